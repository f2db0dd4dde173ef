"""AdaGAN trains in-process on a machine without Ray: the boosting loop and its runner import no ray."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# `sys.modules["ray"] = None` makes every `import ray` raise ImportError, as on a machine without Ray.
SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["ray"] = None

    import json

    import torch

    from raygan import logs
    from raygan.config import load_config
    from raygan.data import load_dataset
    from raygan.ensemble.boosting_loop import load_state, state_path, train_boosting
    from raygan.runs import RunFolder

    torch.set_num_threads(1)
    logs.configure()
    cfg = load_config(overrides=[
        "data.name=digits", "data.classes={a: [0], b: [1]}", "gan.family=dcgan", "gan.width=8",
        "gan.z_dim=16", "train.steps=20", "train.batch_size=16", "train.checkpoint_every=10",
        "train.log_every=10", "ensemble.members=2", "ensemble.method=adagan",
        "boosting.classifier_epochs=1", "output.sample_grid=16", "output.root=" + sys.argv[1]])
    dataset, run = load_dataset(cfg.data), RunFolder.for_config(cfg)
    entries = train_boosting(cfg, dataset, run)
    manifest = run.manifest()
    print("RESULT " + json.dumps({
        "entries": [e["class"] + "/" + str(e["member"]) for e in entries],
        "members": sorted(manifest["members"]), "mixtures": manifest["mixtures"],
        "states": {name: load_state(run, name)["step"] for name in dataset.classes},
        "state_files": [state_path(run, name).is_file() for name in dataset.classes]}))
""")


def test_adagan_in_process_without_ray(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "runs")], capture_output=True,
                         text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[boosting] class b step 2/2: beta 0.500, ESS" in out.stdout
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert result["entries"] == result["members"] == ["a/0", "a/1", "b/0", "b/1"]
    assert set(result["mixtures"]) == {"a", "b"}
    assert all(abs(sum(w) - 1.0) < 1e-12 and len(w) == 2 for w in result["mixtures"].values())
    assert result["states"] == {"a": 2, "b": 2} and result["state_files"] == [True, True]
