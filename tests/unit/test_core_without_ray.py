"""Design principle 5: the core runs without Ray; importing it must not import ray."""
import subprocess
import sys


def test_importing_the_core_does_not_import_ray():
    code = ("import sys; import raygan.config, raygan.data, raygan.gan.models, raygan.gan.losses, raygan.gan.train, "
            "raygan.ensemble, raygan.synthesis, raygan.metrics.grid, raygan.reporting.table1, raygan.reporting.demo, "
            "raygan.tools.bench, raygan.cli; "
            "assert 'ray' not in sys.modules, 'the core imported ray'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
