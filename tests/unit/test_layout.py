"""The packages' boundaries: the manager sends tasks without loading the worker's code,
and the workers run without the web framework."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_after(code: str) -> set[str]:
    """Run `code` in a fresh interpreter; return the modules it had imported by the end."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_manager_does_not_import_the_workers_code():
    loaded = modules_after("import job_manager\njob_manager.create_app()")
    assert "job_manager.api.jobs" in loaded  # the app was built, with its blueprints
    worker_only = {"job_tasks.tasks", "job_tasks.reading.text", "job_tasks.upkeep.recovery"}
    assert not {name for name in loaded if name.startswith("job_tasks.fetching")}
    assert not worker_only & loaded


def test_the_workers_do_not_import_flask():
    loaded = modules_after("import job_tasks\njob_tasks.app.loader.import_default_modules()")
    assert "job_tasks.tasks" in loaded  # the tasks were registered
    assert "flask" not in loaded and not {n for n in loaded if n.startswith("job_manager")}
