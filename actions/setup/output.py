"""Print one value of a JSON artifact for a step output: output.py FILE KEY [KEY ...].

Prints an empty line when the file or a key is missing, so optional outputs stay empty.
`output.py PLAN --matrix` prints the plan's outputs instead: matrix=…, count=…, name=….
"""

import json
import sys
from pathlib import Path

path, keys = Path(sys.argv[1]), sys.argv[2:]
value = json.loads(path.read_text()) if path.is_file() else {}
if keys == ["--matrix"]:
    include = value.get("include", [])
    print(f"matrix={json.dumps({'include': include}, separators=(',', ':'))}")
    print(f"count={len(include)}")
    print(f"name={include[0]['name'] if include else ''}")
    print(f"spec={include[0]['spec'] if include else ''}")
    sys.exit(0)
for key in keys:
    value = value.get(key) if isinstance(value, dict) else None
print("" if value is None else value)
