# Prints a YAML file as JSON (PyYAML), for the test that reads action.yml: yaml_to_json.py FILE.
import json, sys
import yaml
json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)
