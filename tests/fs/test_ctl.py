"""idbmountctl's refusals: what it will not make or touch, each with a clear
message, the exit status of its kind, and nothing changed."""
import os

from conftest import ctl


def test_keypath_holding_nul_is_refused(tmp_path):
    data = str(tmp_path / "data")
    ctl(data, "client", "add", "alice")
    p = ctl(data, "mkstore", "alice/shop/users", "--keypath", '"a\\u0000b"', check=False)
    assert p.returncode == 2, p.stderr
    assert "U+0000" in p.stderr
    p = ctl(data, "mkstore", "alice/shop/users", "--keypath", '["a", "b\\u0000"]', check=False)
    assert p.returncode == 2, p.stderr
    assert "U+0000" in p.stderr
    assert ctl(data, "ls", "alice").stdout == ""
