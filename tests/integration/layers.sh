# layers.sh - the shape of the tree, measured on the build: the library's
# files call each other one way only, layer by layer as lib/LAYERS lists
# them, and no function of the library or the tools runs past 80 lines.
#
# Who calls whom comes from the objects, not the #include lines: nm gives
# the global symbols each lib/*.o defines and those it needs, and A calls B
# where A needs a symbol that B defines.  Calls through a pointer (a
# container's ops, a handle's release) are the seams that let a lower file
# serve an upper one, and are not edges.  Function lengths come from the
# sources with comments, strings and preprocessor lines blanked out, so
# that a brace in any of them cannot end a function early.

require_cmd nm python3 cc

LIB=$PP_SRCDIR/lib
OBJ=$PARTPACK_BUILD/lib

cat >shape.py <<'PY'
import collections, glob, os, re, subprocess, sys

# ---- the call graph between objects --------------------------------------

def symbols(obj):
    """The global symbols obj defines and those it needs."""
    out = subprocess.run(['nm', obj], capture_output=True, text=True,
                         check=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        if kind == 'U':
            needed.add(name)
        elif kind.isupper():
            defined.add(name)
    return defined, needed

def graph(objs):
    """{file: {file it calls: [symbols]}} for objects named file.o."""
    defined, needed = {}, {}
    for obj in objs:
        name = os.path.basename(obj)[:-2]
        defined[name], needed[name] = symbols(obj)
    owner = {s: n for n, d in defined.items() for s in d}
    edges = {n: collections.defaultdict(list) for n in defined}
    for n, want in needed.items():
        for s in sorted(want):
            if s in owner and owner[s] != n:
                edges[n][owner[s]].append(s)
    return edges

def cycles(edges):
    """The strongly connected components of more than one file (Tarjan's
    algorithm, without recursion)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter; counter += 1
        stack.append(root); on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter; counter += 1
                    stack.append(w); on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop(); on_stack.discard(w); component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found

def read_layers(path):
    """[(layer, [files])] top to bottom, from lines "NAME: FILE...";
    lines that start with white space continue the list."""
    layers = []
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        if line[0].isspace() and layers:
            layers[-1][1].extend(line.split())
            continue
        name, _, files = line.partition(':')
        layers.append((name.strip(), files.split()))
    return layers

def check_graph(src_dir, obj_dir, layers_path):
    sources = sorted(os.path.basename(f)[:-2]
                     for f in glob.glob(src_dir + '/*.c'))
    missing = [s for s in sources
               if not os.path.exists(f'{obj_dir}/{s}.o')]
    edges = graph([f'{obj_dir}/{s}.o' for s in sources if s not in missing])
    layers = read_layers(layers_path)
    level = {}
    twice = []
    for i, (name, files) in enumerate(layers):
        for f in files:
            if f in level:
                twice.append(f)
            level[f] = i
    unlisted = [s for s in sources if s not in level]
    stale = [f for f in level if f not in sources]
    upward = []
    for a in sorted(edges):
        for b, syms in sorted(edges[a].items()):
            if a in level and b in level and level[b] < level[a]:
                upward.append(f'{a} ({layers[level[a]][0]}) calls {b} '
                              f'({layers[level[b]][0]}): {" ".join(syms)}')
    loops = cycles(edges)
    with open('graph.txt', 'w') as out:
        for name, files in layers:
            for f in files:
                out.write(f'{name:9} {f} -> '
                          f'{" ".join(sorted(edges.get(f, {})))}\n')
    report = {
        'missing': missing, 'unlisted': unlisted, 'stale': stale,
        'twice': twice, 'upward': upward,
        'cycles': [' '.join(c) for c in loops],
        'files': [str(len(edges))],
        'edges': [str(sum(len(e) for e in edges.values()))],
    }
    for key, lines in report.items():
        with open(key + '.txt', 'w') as out:
            out.write(''.join(line + '\n' for line in lines))

# ---- function lengths ----------------------------------------------------

def blank_out(text):
    """text with comments, string and character literals and preprocessor
    lines (continuations included) replaced by spaces, newlines kept, so
    that the lines still count and only code braces remain."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == '#':
            while i < n and not (text[i] == '\n' and text[i - 1] != '\\'):
                out.append('\n' if text[i] == '\n' else ' ')
                i += 1
            continue
        if text.startswith('/*', i):
            end = text.find('*/', i + 2)
            end = n if end < 0 else end + 2
            out.extend('\n' if ch == '\n' else ' ' for ch in text[i:end])
            i = end
            continue
        if text.startswith('//', i):
            while i < n and text[i] != '\n':
                out.append(' ')
                i += 1
            continue
        if c in '"\'':
            out.append(' ')
            i += 1
            while i < n and text[i] != c:
                if text[i] == '\\':
                    out.append(' ')
                    i += 1
                out.append('\n' if i < n and text[i] == '\n' else ' ')
                i += 1
            out.append(' ')
            i += 1
            continue
        out.append(c)
        if c == '\n':
            at_line_start = True
        elif not c.isspace():
            at_line_start = False
        i += 1
    return ''.join(out)

NOT_NAMES = {'__attribute__', '__attribute', 'asm', '__asm__'}

def function_name(code, close):
    """The name of the function whose parameter list ends at close, and
    where it is, or None if the ')' there closes no parameter list;
    attributes between the list and the body are stepped over."""
    while True:
        depth, i = 0, close
        while i >= 0:
            if code[i] == ')':
                depth += 1
            elif code[i] == '(':
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        m = re.search(r'(\w+)\s*$', code[:i])
        if not m:
            return None
        if m.group(1) not in NOT_NAMES:
            return m.group(1), m.start(1)
        close = len(code[:m.start()].rstrip()) - 1
        if close < 0 or code[close] != ')':
            return None

def functions(path):
    """(name, line of the name, body lines) of each function in path:
    a '{' at file level right after a ')' opens one; its body is the lines
    strictly between that '{' and its '}'."""
    code = blank_out(open(path, encoding='utf-8', errors='replace').read())
    found = []
    depth, i = 0, 0
    while i < len(code):
        c = code[i]
        if c == '{' and depth == 0:
            before = code[:i].rstrip()
            named = function_name(code, len(before) - 1) \
                if before.endswith(')') else None
            start = i
            depth = 1
            i += 1
            while i < len(code) and depth > 0:
                depth += {'{': 1, '}': -1}.get(code[i], 0)
                i += 1
            if named:
                first = code.count('\n', 0, start)
                last = code.count('\n', 0, i - 1)
                found.append((named[0], code.count('\n', 0, named[1]) + 1,
                              last - first - 1))
            continue
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
        i += 1
    return found

def check_lengths(limit, paths):
    count, long_ones = 0, []
    for path in paths:
        for name, line, length in functions(path):
            count += 1
            if length > limit:
                long_ones.append(f'{path}:{line}: {name}: {length} lines')
    print(count)
    for entry in long_ones:
        print(entry)

if sys.argv[1] == 'graph':
    check_graph(*sys.argv[2:5])
elif sys.argv[1] == 'lengths':
    check_lengths(int(sys.argv[2]), sys.argv[3:])
PY

# ---- the checkers can fail --------------------------------------------------
# Two objects that call each other are a cycle; a caller listed below its
# callee calls up.
mkdir -p probe-src probe-obj
printf 'int pp_b(int);\nint pp_a(int x) { return x ? pp_b(x - 1) : 0; }\n' >probe-src/a.c
printf 'int pp_a(int);\nint pp_b(int x) { return x ? pp_a(x - 1) : 1; }\n' >probe-src/b.c
printf 'int pp_c(void) { return 3; }\n' >probe-src/c.c
printf 'int pp_c(void);\nint pp_d(void) { return pp_c(); }\n' >probe-src/d.c
for f in a b c d; do
	cc -c -o probe-obj/$f.o probe-src/$f.c || bail "cc cannot build the probe objects"
done
printf 'top: c\nmiddle: a b\nbottom: d\n' >probe-layers
python3 shape.py graph probe-src probe-obj probe-layers || bail "shape.py graph failed"
check_eq "the graph check finds a loop of two files" "a b" "$(cat cycles.txt)"
check "... and a call up a layer" grep -q '^d (bottom) calls c (top): pp_c$' upward.txt

# A function of 81 lines, with braces in a string, a comment, a character
# literal and a macro, an attribute before its body and its '{' on the
# line of its name; one of 80 lines beside it; a struct initializer that
# is no function.
python3 - <<'PY' >probe.c
print('static const struct { int a; } table[] = { { 1 }, { 2 } };')
print('__attribute__((unused)) static int long_one(int x) __attribute__((cold));')
print('__attribute__((unused)) static int long_one(int x) {')
print('\tconst char *s = "}}}"; /* } */ char c = \'}\';')
print('#define BRACE }')
for i in range(79):
    print('\tx++;')
print('\treturn x + (s[0] == c); }')
print('static int fits(int x)\n{')
for i in range(79):
    print('\tx++;')
print('\treturn x;\n}')
PY
check_eq "the length check finds the 81-line function and only it" \
	"2|probe.c:3: long_one: 81 lines" \
	"$(python3 shape.py lengths 80 probe.c | paste -sd'|')"
rm -f cycles.txt upward.txt

# ---- the library's files --------------------------------------------------
python3 shape.py graph "$LIB" "$OBJ" "$LIB/LAYERS" || bail "shape.py graph failed"
sed 's/^/# /' graph.txt
check_eq "every lib/*.c has its object in the build" "" "$(cat missing.txt)"
check "... $(cat files.txt) objects, $(cat edges.txt) calls between them" \
	test "$(cat files.txt)" -ge 40 -a "$(cat edges.txt)" -ge 100
check_eq "every lib/*.c is in one layer of lib/LAYERS" "" "$(cat unlisted.txt twice.txt)"
check_eq "... and every file lib/LAYERS lists exists" "" "$(cat stale.txt)"
if [ -s upward.txt ]; then
	not_ok "no file calls a file of a layer above its own" "$(cat upward.txt)"
else
	ok "no file calls a file of a layer above its own"
fi
if [ -s cycles.txt ]; then
	not_ok "no two files call each other, directly or round a loop" \
		"files that call each other: $(cat cycles.txt)"
else
	ok "no two files call each other, directly or round a loop"
fi

# ---- function lengths ---------------------------------------------------------
python3 shape.py lengths 80 "$LIB"/*.[ch] "$PP_SRCDIR"/tools/*.[ch] \
	"$PP_SRCDIR"/tools/nbdkit/*.[ch] >lengths.txt || bail "shape.py lengths failed"
check "the length check sees the functions ($(head -1 lengths.txt) of them)" \
	test "$(head -1 lengths.txt)" -ge 800
long=$(tail -n +2 lengths.txt | sed "s|^$PP_SRCDIR/||")
if [ -n "$long" ]; then
	not_ok "every function in lib/, tools/ and tools/nbdkit/ is at most 80 lines" "$long"
else
	ok "every function in lib/, tools/ and tools/nbdkit/ is at most 80 lines"
fi
