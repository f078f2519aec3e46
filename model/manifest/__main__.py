"""``python -m model.manifest``: print the manifest JSON Schema (regenerates the published file)."""

import json

from model.manifest import json_schema

print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
