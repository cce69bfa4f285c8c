# Validates a JSON file against a JSON schema with the `jsonschema` package (a real validator):
# check_json_schema.py SCHEMA FILE; prints each error and exits 1 when there is one.
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print(f"{list(e.path)}: {e.message}")
sys.exit(1 if errors else 0)
