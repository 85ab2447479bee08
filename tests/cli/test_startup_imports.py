"""`kallos --help` starts without the heavy libraries (docs/decisions.md#D113): they load when a command runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "numpy", "talib", "duckdb", "matplotlib", "httpx", "dask", "pyarrow", "psycopg", "numba")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from kallos.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout
    assert out.stdout.rstrip().endswith("HEAVY="), out.stdout.rstrip().splitlines()[-1]
