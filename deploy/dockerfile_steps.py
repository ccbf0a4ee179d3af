#!/usr/bin/env python3
"""Read the steps of a Dockerfile so that they can be replayed without a container engine.

    dockerfile_steps.py [--dockerfile F] copy STAGE CONTEXT ROOT   copy the stage's COPY sources
                                                                    (not --from) from CONTEXT,
                                                                    following CONTEXT/.dockerignore,
                                                                    to ROOT as if ROOT were /
    dockerfile_steps.py [--dockerfile F] runs STAGE                 the stage's RUN commands, one
                                                                    a line (continuations joined)
    dockerfile_steps.py [--dockerfile F] apt-packages STAGE         packages its apt-get installs
    dockerfile_steps.py [--dockerfile F] get STAGE KEY              WORKDIR, USER, FROM, or
                                                                    ENTRYPOINT / HEALTHCHECK (one
                                                                    argument a line)
    dockerfile_steps.py [--dockerfile F] from-copies STAGE          `FROM-STAGE SOURCE DEST` per
                                                                    COPY --from of the stage
    dockerfile_steps.py context CONTEXT                             every file of the build context
                                                                    after .dockerignore

STAGE is the name given with `AS`, or the index of the stage (0 is the first, -1 the last).
Only what this project's Dockerfile uses is understood: shell and exec forms of RUN, exec forms
of ENTRYPOINT and HEALTHCHECK CMD, and COPY with glob sources.
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import sys


def instructions(path):
    """(KEYWORD, argument text) per instruction, with comments dropped and continuations joined."""
    result, pending = [], ""
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text = (pending + line).strip()
            pending = ""
            keyword, _, rest = text.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(path):
    found = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            found.append({"from": words[0], "name": name, "steps": []})
        elif found:
            found[-1]["steps"].append((keyword, rest))
    return found


def stage(path, key):
    all_stages = stages(path)
    for candidate in all_stages:
        if candidate["name"] == key:
            return candidate
    try:
        return all_stages[int(key)]
    except (ValueError, IndexError):
        sys.exit(f"no stage {key!r} in {path}")


# .dockerignore, with the semantics of Docker's pattern matcher: patterns are relative to the
# context, `**` spans directories, `!` re-includes, the last matching pattern decides, and a
# pattern that matches a directory matches everything below it.
def ignore_patterns(context):
    patterns = []
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return patterns
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if negated else line).lstrip("/")
            patterns.append((negated, pattern_regex(pattern)))
    return patterns


def pattern_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(pattern[i])
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignored(relative, patterns):
    parts = relative.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def context_files(context):
    patterns = ignore_patterns(context)
    files = []
    for directory, subdirectories, names in os.walk(context):
        subdirectories.sort()
        for name in sorted(names):
            relative = os.path.relpath(os.path.join(directory, name), context)
            if not ignored(relative, patterns):
                files.append(relative)
    return files


def copy(dockerfile, key, context, root):
    files = context_files(context)
    workdir = "/"
    for keyword, rest in stage(dockerfile, key)["steps"]:
        if keyword == "WORKDIR":
            workdir = os.path.join(workdir, rest)
            continue
        if keyword != "COPY":
            continue
        words = shlex.split(rest)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources, destination = words[:-1], words[-1]
        target = os.path.join(root, os.path.join(workdir, destination).lstrip("/"))
        into_directory = destination.endswith("/") or len(sources) > 1
        for source in sources:
            source = os.path.normpath(source)
            depth = source.count("/") + 1
            copied = 0
            for relative in files:
                top = "/".join(relative.split("/")[:depth])
                if not fnmatch.fnmatchcase(top, source):
                    continue
                if top != relative:      # a directory: its contents go into the destination
                    out = os.path.join(target, os.path.relpath(relative, top))
                elif into_directory:
                    out = os.path.join(target, os.path.basename(relative))
                else:
                    out = target
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copy2(os.path.join(context, relative), out)
                copied += 1
            if not copied and not glob.has_magic(source):
                sys.exit(f"COPY {source}: not in the build context")
            print(f"COPY {source} -> {os.path.join(workdir, destination)}: {copied} files")


def exec_form(text):
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return ["/bin/sh", "-c", text]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dockerfile", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("copy"); p.add_argument("stage"); p.add_argument("context"); p.add_argument("root")
    p = sub.add_parser("runs"); p.add_argument("stage")
    p = sub.add_parser("apt-packages"); p.add_argument("stage")
    p = sub.add_parser("get"); p.add_argument("stage"); p.add_argument("key")
    p = sub.add_parser("from-copies"); p.add_argument("stage")
    p = sub.add_parser("context"); p.add_argument("context")
    args = parser.parse_args()
    dockerfile = args.dockerfile or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Dockerfile")

    if args.command == "context":
        print("\n".join(context_files(args.context)))
    elif args.command == "copy":
        copy(dockerfile, args.stage, args.context, args.root)
    elif args.command == "from-copies":
        for keyword, rest in stage(dockerfile, args.stage)["steps"]:
            words = shlex.split(rest) if keyword == "COPY" else []
            origin = [w.split("=", 1)[1] for w in words if w.startswith("--from=")]
            if origin:
                plain = [w for w in words if not w.startswith("--")]
                for source in plain[:-1]:
                    print(origin[0], source, plain[-1])
    elif args.command == "runs":
        for keyword, rest in stage(dockerfile, args.stage)["steps"]:
            if keyword == "RUN":
                print(rest)
    elif args.command == "apt-packages":
        packages = []
        for keyword, rest in stage(dockerfile, args.stage)["steps"]:
            if keyword != "RUN":
                continue
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if "apt-get" in words and "install" in words:
                    after = words[words.index("install") + 1:]
                    packages += [w for w in after if not w.startswith("-")]
        print(" ".join(packages))
    elif args.command == "get":
        chosen = stage(dockerfile, args.stage)
        key = args.key.upper()
        if key == "FROM":
            print(chosen["from"])
            return
        value = None
        for keyword, rest in chosen["steps"]:
            if keyword == key:
                value = rest
            elif key == "WORKDIR" and keyword == "WORKDIR":
                value = rest
        if value is None:
            sys.exit(f"no {key} in stage {args.stage}")
        if key == "ENTRYPOINT":
            print("\n".join(exec_form(value)))
        elif key == "HEALTHCHECK":
            _, _, command = value.partition("CMD ")
            words = exec_form(command)
            print("\n".join(words))
        else:
            print(value)


if __name__ == "__main__":
    main()
