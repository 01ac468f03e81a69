"""Print one value of a JSON artifact for a step output: output.py FILE KEY [KEY ...].

Prints an empty line when the file or a key is missing, so optional outputs stay empty.
"""

import json
import sys
from pathlib import Path

path, keys = Path(sys.argv[1]), sys.argv[2:]
value = json.loads(path.read_text()) if path.is_file() else {}
for key in keys:
    value = value.get(key) if isinstance(value, dict) else None
print("" if value is None else value)
