# The Python probe harness (refine-ls): imports version N of the file (v{N}.py) as the module
# __refine_v{N} (so `if __name__ == "__main__"` blocks do not run), then calls each input of
# calls.json in a daemon thread joined with a timeout, appending one line per call to
# out-v{N}.txt: "{call}\t{kind}\t{text}[\t{match}]".
import importlib.util
import json
import os
import sys
import threading


def escape(s):
    s = s[:4096]
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def describe(e):
    text = str(e)
    return type(e).__name__ + (": " + text if text else "")


def safe_repr(value):
    try:
        return repr(value)
    except BaseException as e:
        return "<repr raised " + describe(e) + ">"


def main():
    version = int(sys.argv[1])
    per_call = float(sys.argv[2])
    out = "out-v%d.txt" % version

    def record(line):
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    with open("calls.json", encoding="utf-8") as f:
        calls = json.load(f)
    name = "__refine_v%d" % version
    try:
        spec = importlib.util.spec_from_file_location(name, "v%d.py" % version)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as e:
        record("-\timport\t" + escape(describe(e)))
        os._exit(0)
    ns = module.__dict__
    timeouts = 0
    for index, function, args, expected in calls:
        if timeouts >= 2:
            record("%d\tnotrun\tan earlier call did not end" % index)
            continue
        try:
            fn = ns[function]
            a, k = eval("(lambda *a, **k: (a, k))(" + args + "\n)", ns)
            want = eval(expected, ns) if expected is not None else None
        except BaseException as e:
            record("%d\tdrop\t%s" % (index, escape(describe(e))))
            continue
        result = {}

        def target():
            try:
                result["value"] = fn(*a, **k)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                sys.stdout.flush()
                os._exit(code)
            except BaseException as e:
                result["error"] = describe(e)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(per_call)
        if thread.is_alive():
            timeouts += 1
            record("%d\ttimeout\t" % index)
        elif "error" in result:
            record("%d\tpanic\t%s" % (index, escape(result["error"])))
        elif expected is None:
            record("%d\tvalue\t%s" % (index, escape(safe_repr(result.get("value")))))
        else:
            value = result.get("value")
            text = safe_repr(value)
            try:
                matched = bool(value == want)
            except BaseException:
                matched = text == safe_repr(want)
            record("%d\tvalue\t%s\t%d" % (index, escape(text), int(matched)))
    sys.stdout.flush()
    os._exit(0)


main()
