"""The verify report: a claims table (text for the terminal, Markdown for
`reports/<scale>/report.md`) with the figures, the commands to reproduce and
provenance. Pure formatting: everything comes from `CheckResult`s."""
from __future__ import annotations

import math
import os
from pathlib import Path

from verify.result import ERROR, CheckResult


def _num(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _ci(r: CheckResult) -> str:
    return f"[{_num(r.ci[0])}, {_num(r.ci[1])}]"


def _trend_note(d: dict) -> str:
    means = ", ".join(f"{x:g}: {_num(m['statistic'])}" for x, m in zip(d["x"], d["means"]))
    eff = d["effect"]
    unf = d.get("unfooled_rho")
    unf = (f"; with robustness as 1 - fooling rate: rho {_num(unf['statistic'])} "
           f"[{_num(unf['ci'][0])}, {_num(unf['ci'][1])}] ({unf['verdict']})") if unf else ""
    clean = d.get("clean_accuracy")
    clean = f"; clean accuracy {', '.join(f'{k}: {v:.3f}' for k, v in clean.items())}" if clean else ""
    return (f"{d['y_name']} by {d['x_name']} = {means}{clean}; {d['effect_name']} = "
            f"{_num(eff['statistic'])} [{_num(eff['ci'][0])}, {_num(eff['ci'][1])}] "
            f"({d['effect_verdict']}){unf}; {d['n_points']} test points x {d['n_seeds']} seed(s)")


_SIDE = {"HOLDS": "better", "FAILS": "worse", "INCONCLUSIVE": "no clear difference"}


def _curriculum_note(d: dict) -> str:
    parts = [f"{m}: CuSP {_num(v['cusp'])} vs {_num(v['baseline'])}, delta {_num(v['delta'][0])} "
             f"[{_num(v['delta'][1])}, {_num(v['delta'][2])}] ({_SIDE[v['verdict']]})"
             for m, v in d["metrics"].items()]
    return "; ".join(parts) + (f" ({d['settings']})" if d.get("settings") else "")


def _seeds_note(d: dict) -> str:
    seeds = d.get("seed_verdicts")
    if not seeds:
        return ""
    each = ", ".join(f"seed {k}: {v}" for k, v in seeds.items())
    return (f"; each training seed alone: {each}"
            + (" (seed-fragile: the seeds disagree)" if d.get("seed_fragile") else ""))


def _ranges_note(d: dict) -> str:
    rng = d.get("auc_ranges")
    if not rng:
        return ""
    e0, e1 = rng["robustness_auc_eps"]
    t0, t1 = rng["invariance_auc_theta"]
    return (f"; robustness AUC over eps [{e0:g}, {e1:g}], invariance AUC over theta "
            f"[{t0:g}, {t1:g}]; {rng['resolved_runs']}/{rng['runs']} robustness curves resolved "
            "(>= 8 grid eps between 90 % of clean accuracy and 5 %)")


def note(r: CheckResult) -> str:
    """One line with the numbers behind a verdict (its seeds, the range its
    AUCs cover, and its caveat, if any)."""
    text = _numbers(r) + _ranges_note(r.details) + _seeds_note(r.details)
    caveat = r.details.get("caveat")
    return f"{text}. Caveat: {caveat}" if caveat else text


def _numbers(r: CheckResult) -> str:
    d = r.details
    if r.verdict == ERROR:
        return f"could not run: {d.get('error', '?')}"
    if "means" in d and "effect" in d:
        return _trend_note(d)
    if r.name.startswith("quoted_a"):
        return (f"{d['kept']}/{d['n_clean_correct']} clean-correct points survive PGD at eps_pixel "
                f"{d['eps_pixel']:.4f}; clean acc {_num(d['clean_accuracy'])}, attacked acc "
                f"{_num(d['attacked_accuracy'])}; threshold 0.5")
    if r.name.startswith("quoted_b"):
        return (f"{d['correct']}/{d['n_points']} correct under PGD at eps_pixel "
                f"{d['eps_pixel']:.4f}; threshold {d['threshold']}")
    if r.name == "theorem1_bound":
        return (f"max lhs - rhs over trained classifiers: {d['worst']}; rhs = {d['rhs']:.4f} at "
                f"p = {d['p']}; violators: {d['violators'] or 'none'}")
    if r.name == "theorem1_sides":
        return "; ".join(f"{k}: {_num(v[0])} [{_num(v[1])}, {_num(v[2])}]"
                         for k, v in d["gaps"].items())
    if r.name.startswith("corollary"):
        return (f"fooling rate {_num(d['fooling_rate'])} vs rot90 {_num(d['fooling_rate_rot90'])}, "
                f"{d['discordant']}/{d['n_points']} points differ, max perturbation gap "
                f"{d['max_perturbation_gap']:.2e}, logit gap {d.get('logit_gap', math.nan):.1e}; "
                f"{d.get('model_source', '')}")
    if r.name.startswith("curriculum"):
        return _curriculum_note(d)
    if r.name.startswith("attack_gap"):
        parts = [f"eps {e['eps']:g}: PGD-{d['pgd_steps']} {_num(e['pgd_accuracy'])}, AutoAttack "
                 f"{_num(e['autoattack_accuracy'])}, worst case {_num(e['worst_case_accuracy'])}, "
                 f"gap {_num(e['gap'])} [{_num(e['gap_ci_exact'][0])}, "
                 f"{_num(e['gap_ci_exact'][1])}]" for e in d["per_eps"]]
        return "; ".join(parts) + f" ({d['n_points']} points; tolerance {d['tolerance']:g})"
    return ""


def text_table(results) -> str:
    """The claims table for the terminal."""
    rows = [(r.name, r.paper_ref, _num(r.statistic), _ci(r), r.verdict) for r in results]
    head = ("check", "paper", "statistic", "95% CI", "verdict")
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown(results, scale: str, figures, report_dir, commands, provenance: dict,
             notes: list[str] = (), readings: list[str] = ()) -> str:
    """report.md: the claims table, the numbers behind each verdict, the
    figures (linked relative to `report_dir`), the commands, provenance."""
    counts = {v: sum(r.verdict == v for r in results)
              for v in ("HOLDS", "FAILS", "INCONCLUSIVE", ERROR)}
    lines = [f"# Verify report, scale `{scale}`", "",
             "Each claim of the paper (Kamath et al., *Invariance vs. Robustness of Neural "
             "Networks*) checked against data: a statistic, its 95 % interval and a verdict "
             "(HOLDS: the interval lies on the claimed side; FAILS: on the other side; "
             "INCONCLUSIVE: it straddles; ERROR: the check could not run).", "",
             "Summary: " + ", ".join(f"{v} {n}" for v, n in counts.items() if n), "",
             "| # | claim | paper | statistic | 95% CI | verdict |",
             "|---|-------|-------|-----------|--------|---------|"]
    for i, r in enumerate(results, 1):
        lines.append(f"| {i} | {_md_escape(r.claim)} | {_md_escape(r.paper_ref)} | "
                     f"{_num(r.statistic)} | {_ci(r)} | **{r.verdict}**"
                     + (" (seed-fragile)" if r.details.get("seed_fragile") else "")
                     + (" (caveat)" if r.details.get("caveat") else "") + " |")
    lines += ["", "## The numbers behind each verdict", ""]
    for i, r in enumerate(results, 1):
        stat = r.details.get("statistic", "")
        lines.append(f"{i}. `{r.name}`: {_md_escape(note(r))}" + (f" (statistic: {stat})" if stat else ""))
    if readings:
        lines += ["", "## How each claim is read", ""] + [f"- {n}" for n in readings]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Figures", ""]
    for fig in figures:
        rel = os.path.relpath(Path(fig), Path(report_dir))
        lines += [f"![{Path(fig).stem}]({rel})", ""]
    if not figures:
        lines += ["(no figures were found)", ""]
    lines += ["## Reproduce", "", "```"] + list(commands) + ["```", "", "## Provenance", ""]
    lines += [f"- {k}: {v}" for k, v in provenance.items()]
    return "\n".join(lines) + "\n"
