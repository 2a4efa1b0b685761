"""berth's fork server for Python snippets.

Started by berth in a ready environment with the distributions to preload as
arguments. It imports them once, then forks an already-initialised
interpreter for every run, so a warm `run_python` pays neither interpreter
start-up nor the import of its dependencies. The protocol is the one the
`fork-server` field of berth's `run-plan` describes; this file is only one
implementation of it.
"""

import ctypes
import importlib
import importlib.metadata
import json
import os
import signal
import socket
import sys
import threading

# Variables read while the interpreter starts: a run that sets them
# differently needs a fresh interpreter, not a fork of this one.
STARTUP_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE")


def startup_env(env):
    """The part of `env` that only takes effect when an interpreter starts."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith("PYTHON") or name in STARTUP_VARIABLES
    }


def top_level_modules(distribution):
    """Importable top-level names a distribution installs."""
    listed = distribution.read_text("top_level.txt")
    if listed:
        return listed.split()
    names = []
    for path in distribution.files or ():
        parts = path.parts
        if len(parts) == 1 and parts[0].endswith(".py"):
            names.append(parts[0][:-3])
        elif len(parts) == 2 and parts[1] == "__init__.py":
            names.append(parts[0])
    return names


def preload(distributions):
    """Import what the requested distributions install; failures are only
    logged, as the snippet will meet them again on its own."""
    for requested in distributions:
        try:
            distribution = importlib.metadata.distribution(requested)
        except importlib.metadata.PackageNotFoundError:
            print(f"fork server: {requested} is not installed", file=sys.stderr)
            continue
        for name in dict.fromkeys(top_level_modules(distribution)):
            if not name.isidentifier() or name.startswith("_"):
                continue
            try:
                importlib.import_module(name)
            except BaseException as err:  # noqa: BLE001 - any import failure is only logged
                print(f"fork server: importing {name}: {err!r}", file=sys.stderr)


def receive(control):
    """The next request with its four descriptors, or None when berth has
    closed the control socket."""
    data, fds, _flags, _addr = socket.recv_fds(control, 1 << 18, 4)
    if not data:
        return None
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        print("fork server: a request without its four descriptors", file=sys.stderr)
        return receive(control)
    return json.loads(data), fds


def read_line(sock):
    """One newline-terminated line from `sock`, or b"" at end of stream."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return b""
        line += chunk
    return line


CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV = 0x2, 0x4
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x1000, 0x2000, 0x4000, 0x40000
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38
LIBC = ctypes.CDLL(None, use_errno=True)


def checked(result, what):
    """Raise with errno's message when a libc call failed."""
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source, target, fstype, flags, data=None):
    """mount(2)."""
    encode = lambda text: None if text is None else os.fsencode(text)  # noqa: E731
    checked(
        LIBC.mount(encode(source), encode(target), encode(fstype), flags, encode(data)),
        f"mounting {target}",
    )


def confine(rules):
    """Before the run exists: enter user, mount and pid namespaces of its
    own, where each directory of `hide` is an empty one, except `keep`,
    the run's workspace, and /tmp is private. The run forked next is the
    first process of the new pid namespace, so everything it starts dies
    with it."""
    uid, gid = os.getuid(), os.getgid()
    checked(LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Mounts are assembled on a stage of this run's own, then moved into
    # place: the workspace must survive the hiding of its parent, and may
    # itself lie under /tmp, which is replaced last.
    stage = "/tmp/.berth-stage"
    os.makedirs(stage, exist_ok=True)
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700,size=64k")
    keep = os.path.realpath(rules["keep"])
    staged_keep, new_tmp = f"{stage}/keep", f"{stage}/tmp"
    os.mkdir(staged_keep)
    os.mkdir(new_tmp)
    mount(keep, staged_keep, None, MS_BIND | MS_REC)
    mount("tmpfs", new_tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=512m")
    for root in rules["hide"]:
        if os.path.isdir(root):
            mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
    under_tmp = os.path.commonpath([keep, "/tmp"]) == "/tmp"
    target = new_tmp + keep[len("/tmp"):] if under_tmp else keep
    os.makedirs(target, exist_ok=True)
    mount(staged_keep, target, None, MS_MOVE)
    mount(new_tmp, "/tmp", None, MS_MOVE)


def drop_privileges():
    """In the run, once its namespaces are set up: no capabilities, none to
    gain, and no way for another run to read its memory or descriptors.
    (Its /proc stays the server's: the kernel refuses a fresh one under the
    sandbox's read-only parts of /proc. Other runs listed there are not
    dumpable, so their memory, environment and files stay closed.)"""
    for cap in range(64):
        if LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    checked(LIBC.capset(header, data), "dropping capabilities")
    checked(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
    checked(LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "clearing dumpable")


def report_and_fork(request, fds):
    """In the reporter child: start a session, confine itself when asked,
    tell berth its id, wait for berth to place it in the run's cgroup, fork
    the run and report how it ended. Returns only in the run's own
    process."""
    stdin, stdout, stderr, report_fd = fds
    try:
        os.setsid()
        report = socket.socket(fileno=report_fd)
        rules = request.get("confine")
        if rules is not None:
            try:
                confine(rules)
            except OSError as err:
                report.sendall(f"error {err}\n".encode())
                os._exit(71)
        report.sendall(b"pid %d\n" % os.getpid())
        if read_line(report) != b"go\n":
            os._exit(0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        run = os.fork()
    except BaseException:  # noqa: BLE001 - the reporter must never return into the server loop
        os._exit(70)
    if run == 0:
        report.close()
        if rules is not None:
            try:
                drop_privileges()
            except OSError as err:
                os.write(stderr, f"berth fork server: {err}\n".encode())
                os._exit(71)
        return request, (stdin, stdout, stderr)
    try:
        for fd in (stdin, stdout, stderr):
            os.close(fd)
        _, status = os.waitpid(run, 0)
        if os.WIFEXITED(status):
            report.sendall(b"exit %d\n" % os.WEXITSTATUS(status))
        else:
            report.sendall(b"signal %d\n" % os.WTERMSIG(status))
    finally:
        os._exit(0)


def serve(control):
    """Fork a reporter per request until berth closes the control socket.
    Returns only in a run's own process, with its request."""
    while True:
        received = receive(control)
        if received is None:
            os._exit(0)
        request, fds = received
        if os.fork() == 0:
            control.close()
            return report_and_fork(request, fds)
        for fd in fds:
            os.close(fd)


def execute(request, stdio, own_startup_env):
    """Become the run: its descriptors, directory, environment and argv,
    then its script as `__main__`. A run this interpreter cannot stand in
    for faithfully is executed as a fresh process instead."""
    for target, fd in zip((0, 1, 2), stdio):
        os.dup2(fd, target)
        os.close(fd)
    argv, env = request["argv"], dict(request["env"])
    os.chdir(request["cwd"])
    ours = (
        len(argv) >= 2
        and (
            request.get("same-program")
            or os.path.abspath(argv[0]) == os.path.abspath(sys.executable)
        )
        and not argv[1].startswith("-")
        and startup_env(env) == own_startup_env
    )
    if not ours:
        os.execve(argv[0], argv, env)
    os.environ.clear()
    os.environ.update(env)
    reseed()
    script = os.path.abspath(argv[1])
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(script)
    main = type(sys)("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec")
        exec(code, main.__dict__)
        status = 0
    except SystemExit as exit:
        status = exit_status(exit.code)
    except BaseException as err:  # noqa: BLE001 - report like the interpreter's top level does
        sys.excepthook(type(err), err, err.__traceback__.tb_next)
        status = 1
    finish(status)


def exit_status(code):
    """The exit status the interpreter gives `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def finish(status):
    """End the run as the interpreter's own shutdown would, in its order:
    wait for threads, run `atexit` callbacks, flush the standard streams.
    Tearing down every module the server preloaded is skipped: it would
    cost more than the run itself, and a fresh process gets it for free."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the interpreter reports a failed flush with status 120
            status = 120
    os._exit(status)


def reseed():
    """Give the run random generators of its own, as a fresh interpreter
    has: every fork would otherwise repeat the server's sequence. The
    standard `random` module reseeds itself after a fork; NumPy's global
    generator does not."""
    numpy = sys.modules.get("numpy")
    legacy_seed = getattr(getattr(numpy, "random", None), "seed", None)
    if legacy_seed is not None:
        legacy_seed()


def main():
    own_startup_env = startup_env(os.environ)
    # Runs are forked from this process: none of them may read or change
    # its memory, or through it the runs forked after them.
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # The control socket arrives as standard input; keep it off fd 0 so a
    # run's own stdin can take that place.
    control = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    preload(sys.argv[1:])
    if threading.active_count() > 1:
        print("fork server: preloading started threads; forking is unsafe", file=sys.stderr)
        sys.exit(3)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    request, stdio = serve(control)
    execute(request, stdio, own_startup_env)


main()
