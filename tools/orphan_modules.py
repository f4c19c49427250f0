"""Fail when a generated module names a notebook that no longer exists (nbdev leaves it behind)."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
orphans = []
for module in sorted((root / "strategy_engine").rglob("*.py")):
    head = module.read_text(encoding="utf-8").splitlines()[:3]
    for line in head:
        m = re.search(r"File to edit: (\S+\.ipynb)", line)
        if m and not (module.parent / m.group(1)).resolve().exists():
            orphans.append(f"{module.relative_to(root)} (generated from {m.group(1)}, which no longer "
                           "exists)")
if orphans:
    print("sync-check: orphan modules; delete them or restore their notebooks:\n  " + "\n  ".join(orphans))
    sys.exit(1)
