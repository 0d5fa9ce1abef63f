"""Explains a failed conformance run for scripts/test-mcp-clients.sh: what the baseline check
said (unexpected failures, stale entries), then every failing check of the scenarios it named,
with its message and details from the run's checks.json files.

Usage: conformance_report.py OUT_DIR   (the run's log is OUT_DIR.log)
"""

import glob
import json
import os
import re
import sys

out = sys.argv[1]
log = re.sub(r"\x1b\[[0-9;]*m", "", open(out + ".log").read())
named = set()
for section in re.findall(
        r"\n((?:Unexpected failures|Stale baseline entries)[^\n]*\n(?:  [^\n]*\n)*)", log):
    print("   " + section.strip().replace("\n", "\n   "))
    named |= {line.split()[-1].split(":")[0] for line in section.splitlines()[1:]}
if not named:
    print(log[-3000:])
for path in sorted(glob.glob(out + "/*/checks.json")):
    name = os.path.basename(os.path.dirname(path))
    scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", name)
    if scenario not in named:
        continue
    for check in json.load(open(path)):
        if check["status"] in ("FAILURE", "WARNING"):
            print(f"   {scenario} {check['status']} {check['id']}: {check.get('errorMessage')}\n"
                  f"      {json.dumps(check.get('details'))[:1200]}")
