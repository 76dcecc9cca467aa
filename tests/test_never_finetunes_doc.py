"""docs/robustness.md names the schedules whose plan never trains with the finetune config (their
`finetune.*` overrides are a note, not an error): the list is the one the plans give."""

from __future__ import annotations

import re

from conftest import REPO


def test_robustness_md_lists_every_schedule_that_never_fine_tunes():
    """The list said (at_init, lottery_ticket, gradual) and left out post_prune_reinit, whose plan
    retrains with the train config too."""
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (schemas, resolvers)
    from prune_cli.schedules import SCHEDULES

    configs = REPO / "configs"
    never = set()
    with initialize_config_dir(str(configs), version_base="1.3"):
        for name in sorted(p.stem for p in (configs / "schedule").glob("*.yaml")):
            cfg = compose("config", [f"schedule={name}"])
            if not any(getattr(step, "which", None) == "finetune" for step in SCHEDULES.get(cfg.schedule.name)(cfg)):
                never.add(name)
    text = " ".join((REPO / "docs" / "robustness.md").read_text().split())
    listed = re.search(r"never trains with the finetune config \(([^)]*)\)", text)
    assert listed, "the sentence in docs/robustness.md moved"
    assert {x.strip() for x in listed.group(1).split(",")} == never
