from empirics.train.cli import main

main()
