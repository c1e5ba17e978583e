#!/bin/bash
# The daemon's module graph is a DAG, and every header declares only its own
# module's functions and variables.
#
# A module is a .c file and the .h of the same name, in daemon/ or common/
# (foo-dbus.c with foo-dbus.h is a module of its own; a .c without a .h or a
# .h without a .c is a module too), plus every foo-*.c without a header of
# its own: manager-refresh.c is part of manager. Checked:
#  1. The modules whose headers a module includes (#include "bar.h" in foo.c
#     or foo.h) form an acyclic graph; each cycle is printed
#     ("cycle: arbiter -> manager -> arbiter").
#  2. Every function prototype and extern variable in X.h has its definition
#     in X.c; one defined in another .c is an error naming both files, one
#     defined nowhere in daemon/ or common/ is an error too. static inline
#     functions, macros, types and struct members are not declarations of
#     the module's.
#
# Usage: tests/check-layering.sh [--root DIR] [--list]
#   --root  the source tree (default: the one this script is in)
#   --list  print the graph, one "LAYER module: deps (files)" a line, lowest
#           layer first (layer 0 includes nothing of daemon/ or common/; the
#           modules of a cycle share a layer, marked), and exit 0
# Exit: 0 clean, 1 a violation (each printed), 2 bad usage, 3 the checker
# itself failed (a traceback).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
list=0
while [ $# -gt 0 ]; do
	case $1 in
	--root) root=$2; shift 2 ;;
	--list) list=1; shift ;;
	-h | --help) sed -n '2,/^set -eu/{/^set/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) echo "check-layering.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

python=${PYTHON3:-/usr/bin/python3}
exec "$python" - "$root" "$list" <<'PY'
import os
import re
import sys

def crashed(kind, value, tb):
    import traceback
    traceback.print_exception(kind, value, tb)
    sys.stdout.flush()
    os._exit(3)

sys.excepthook = crashed
root, list_mode = sys.argv[1], sys.argv[2] == "1"
DIRS = ("daemon", "common")

# --- the C text, reduced to what file scope declares --------------------------

def strip_comments_strings(text, strings=True):
    """Comments become a space, string and char literals empty quotes (when
    strings)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'" and strings:
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)

def split_preprocessor(text):
    """(the code without preprocessor lines, the #include "x" names)."""
    text = text.replace("\\\n", " ")
    code, includes = [], []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            m = re.match(r'#\s*include\s*"([^"]+)"', s)
            if m:
                includes.append(m.group(1))
            code.append("")
        else:
            code.append(line)
    return "\n".join(code), includes

MACRO_CALL = re.compile(r"[A-Z_][A-Z0-9_]*\s*\(")

def matching(text, i, open_c, close_c):
    """Index just past the bracket that closes the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_c:
            depth += 1
        elif text[j] == close_c:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)

def file_scope(code):
    """Yield (statement, has_body) for each file-scope declaration or
    definition: has_body is True for a function definition (its body
    dropped); struct/enum/initializer bodies are dropped too."""
    i, n, acc = 0, len(code), ""
    while i < n:
        c = code[i]
        if not acc.strip():
            # A macro invoked at file scope (DEFINE_TRIVIAL_CLEANUP_FUNC(...)):
            # it expands to definitions of its own, not the module's prototypes.
            m = MACRO_CALL.match(code, i)
            if m:
                j = matching(code, m.end() - 1, "(", ")")
                if not code[j:].lstrip().startswith("{"):
                    i = j
                    continue
        if c.isspace() and not acc.strip():
            i += 1
            continue
        if c == "{":
            j = matching(code, i, "{", "}")
            if re.search(r"\)\s*(__attribute__\s*\(\(.*\)\)\s*)*$", acc.strip(), re.S) and "=" not in acc:
                yield acc, True
                acc = ""
            else:
                acc += " {} "
            i = j
            continue
        if c == ";":
            yield acc, False
            acc = ""
            i += 1
            continue
        acc += c
        i += 1
    if acc.strip():
        yield acc, False

def strip_attributes(s):
    s = re.sub(r"__attribute__\s*\(\(", "\x00", s)
    while "\x00" in s:
        i = s.index("\x00")
        # the "((" became \x00: find the "))" that closes it
        depth, k = 2, i + 1
        while k < len(s) and depth:
            if s[k] == "(":
                depth += 1
            elif s[k] == ")":
                depth -= 1
            k += 1
        s = s[:i] + " " + s[k:]
    # the project's attribute macros: _printf_(3, 4), _cleanup_(f), _unused_
    s = re.sub(r"\b_[a-z]+_\s*\([^()]*\)", " ", s)
    s = re.sub(r"\b_[a-z]+_\b", " ", s)
    return " ".join(s.split())

KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof", "__typeof__", "typeof"}

def function_name(stmt):
    """The name of the function a declaration declares or defines, else None
    (a function pointer variable declares none)."""
    depth = 0
    for m in re.finditer(r"[()]", stmt):
        if m.group() == "(":
            if depth == 0:
                before = stmt[:m.start()].rstrip()
                w = re.search(r"([A-Za-z_]\w*)$", before)
                if not w or w.group(1) in KEYWORDS:
                    return None     # "(*name)(...)": a pointer, no function
                # there must be a type before the name
                if not before[:w.start()].strip():
                    return None
                return w.group(1)
            depth += 1
        else:
            depth -= 1
    return None

def variable_name(stmt):
    """The name a variable declaration declares (the last one if several)."""
    s = stmt.split("=", 1)[0]
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = s.replace("{}", " ")
    words = re.findall(r"[A-Za-z_]\w*", s)
    if len(words) < 2 or words[-2] in ("struct", "union", "enum"):
        return None
    return words[-1]

def scan(path):
    """{'includes': [...], 'protos': {name: 'function'|'variable'},
        'defs': set of names defined with external linkage}"""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    _, includes = split_preprocessor(strip_comments_strings(text, strings=False))
    code, _ = split_preprocessor(strip_comments_strings(text))
    protos, defs = {}, set()
    for raw, has_body in file_scope(code):
        stmt = strip_attributes(raw)
        if not stmt:
            continue
        words = re.findall(r"[A-Za-z_]\w*", stmt)
        if not words or "typedef" in words:
            continue
        name = function_name(stmt)
        # "static" before the parameters ("int a[static 8]" is no linkage)
        static = "static" in re.findall(r"\w+", stmt.split("(", 1)[0])
        if has_body:
            if name and not static:
                defs.add(name)
            continue
        if name:
            if not static:
                protos[name] = "function"
            continue
        if words[0] in ("struct", "union", "enum") and "{}" in stmt and len(words) <= 2:
            continue    # a type's definition
        var = variable_name(stmt)
        if not var or static:
            continue
        if "extern" in words:
            protos[var] = "variable"
        else:
            defs.add(var)
    return {"includes": includes, "protos": protos, "defs": defs}

# --- modules -----------------------------------------------------------------

modules = {}    # name -> {"c": relpath or None, "h": relpath or None}
for d in DIRS:
    full = os.path.join(root, d)
    if not os.path.isdir(full):
        continue
    for fn in sorted(os.listdir(full)):
        base, ext = os.path.splitext(fn)
        if ext not in (".c", ".h"):
            continue
        m = modules.setdefault(base, {"c": None, "h": None})
        rel = os.path.join(d, fn)
        if m[ext[1:]] and os.path.dirname(m[ext[1:]]) != d:
            print(f"error: two modules named {base}: {m[ext[1:]]} and {rel}")
            sys.exit(1)
        m[ext[1:]] = rel

# foo-bar.c without foo-bar.h belongs to the longest foo that has a header.
for name in sorted(modules):
    m = modules[name]
    if m["h"] or not m["c"]:
        continue
    parts = name.split("-")
    for k in range(len(parts) - 1, 0, -1):
        owner = modules.get("-".join(parts[:k]))
        if owner and owner["h"]:
            owner.setdefault("extra", []).append(m["c"])
            del modules[name]
            break

if not modules:
    print(f"check-layering: no .c or .h files in {' or '.join(os.path.join(root, d) for d in DIRS)}")
    sys.exit(2)
header_module = {os.path.basename(m["h"]): name for name, m in modules.items() if m["h"]}
def files_of(m):
    return [f for f in [m["c"], m["h"]] + m.get("extra", []) if f]

def sources_of(m):
    return [f for f in [m["c"]] + m.get("extra", []) if f]

info = {}
for name, m in modules.items():
    for f in files_of(m):
        info[f] = scan(os.path.join(root, f))

deps = {}
for name, m in modules.items():
    ds = set()
    for f in files_of(m):
        if True:
            for inc in info[f]["includes"]:
                dep = header_module.get(os.path.basename(inc))
                if dep and dep != name:
                    ds.add(dep)
    deps[name] = ds

# --- 1. cycles ---------------------------------------------------------------

def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out

def cycles_in(comp, graph, limit=200):
    """Every elementary cycle of one strongly connected component, each
    starting at its smallest module (so each is printed once)."""
    members, found = set(comp), []
    for start in comp:
        path = [start]
        def walk(v):
            for w in sorted(graph[v] & members):
                if len(found) >= limit:
                    return
                if w == start:
                    found.append(path + [start])
                elif w > start and w not in path:
                    path.append(w)
                    walk(w)
                    path.pop()
        walk(start)
    return found

components = sccs(deps)
cyclic = [c for c in components if len(c) > 1]
in_cycle = {v for c in cyclic for v in c}

if list_mode:
    # Layers: 0 depends on nothing here, N on layers below N only (a cycle's
    # modules share one layer, marked).
    comp_of = {v: i for i, c in enumerate(components) for v in c}
    layer = {}
    for i, comp in enumerate(components):   # Tarjan: dependencies come first
        below = [layer[comp_of[w]] for v in comp for w in deps[v] if comp_of[w] != i]
        layer[i] = 1 + max(below) if below else 0
    for v in sorted(deps, key=lambda v: (layer[comp_of[v]], v)):
        files = " ".join(files_of(modules[v]))
        mark = "  [cycle]" if v in in_cycle else ""
        print(f"{layer[comp_of[v]]} {v}: {' '.join(sorted(deps[v])) or '-'}{mark}  ({files})")
    sys.exit(0)

errors = []
for comp in cyclic:
    for cyc in cycles_in(comp, deps):
        errors.append("cycle: " + " -> ".join(cyc))

# --- 2. every header declares only its own module's ---------------------------

defined_in = {}
for name, m in modules.items():
    for f in sources_of(m):
        for d in info[f]["defs"]:
            defined_in.setdefault(d, []).append(f)

for name in sorted(modules):
    m = modules[name]
    if not m["h"]:
        continue
    own = set().union(*(info[f]["defs"] for f in sources_of(m)))
    for proto, what in sorted(info[m["h"]]["protos"].items()):
        if proto in own:
            continue
        where = [f for f in defined_in.get(proto, []) if f not in sources_of(m)]
        if where:
            errors.append(f"{m['h']}: {what} {proto} is defined in {', '.join(where)}, "
                          f"not in {m['c'] or os.path.splitext(m['h'])[0] + '.c'}")
        else:
            errors.append(f"{m['h']}: {what} {proto} is declared but defined nowhere in "
                          f"{' or '.join(d + '/' for d in DIRS)}")

for e in errors:
    print(e)
if errors:
    print(f"check-layering: {len(errors)} violation(s)")
    sys.exit(1)
print(f"check-layering: {len(modules)} modules, acyclic, every header declares its own module's")
PY
