"""The top-level package stays light (the CLI starts fast) and exposes the main entry points lazily."""

import subprocess
import sys


def test_import_is_light_and_entry_points_resolve():
    code = (
        "import sys, stchat;"
        "heavy = [m for m in ('torch', 'transformers', 'av', 'gradio') if m in sys.modules];"
        "print(heavy); from stchat import StableChat, render_answer, parse_answer;"
        "print(StableChat.__module__, render_answer.__module__, parse_answer.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "stchat.chat stchat.pipeline stchat.parse"]
