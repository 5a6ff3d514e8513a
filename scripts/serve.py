"""Serve the app locally the way the Procfile does on Heroku: nginx on $PORT in front of gunicorn.

    PORT=8000 python -m scripts.serve          # what scripts/run.sh runs
    python -m scripts.serve --check            # render config/nginx.conf.erb and let nginx test it

Heroku's nginx buildpack (`bin/start-nginx` in the Procfile) renders config/nginx.conf.erb, starts
the command that follows it, waits for /tmp/app-initialized and then starts nginx. This does the
same with the system's nginx, with the socket, the ready file and nginx's files in a private
temporary folder, so that several servers can run side by side (the tests start several). When
either process ends, the other is stopped and the exit status passed on.
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "config" / "nginx.conf.erb"
PROXY_LAUNCHER = "bin/start-nginx"
HEROKU_SOCKET = "/tmp/nginx.socket"

# The only ERB the template uses: <%= ENV["NAME"] %> or <%= ENV["NAME"] || default %>.
ENV_TAG = re.compile(r'<%=\s*ENV\["(\w+)"\]\s*(?:\|\|\s*("[^"]*"|\d+)\s*)?%>')


def render(template, env):
    """The template with each ENV tag replaced by the variable's value or its default."""
    def value(match):
        name, default = match.groups()
        if name in env:
            return env[name]
        if default is None:
            sys.exit(f"error: config/nginx.conf.erb needs {name} in the environment")
        return default.strip('"')
    text = ENV_TAG.sub(value, template)
    if "<%" in text:
        sys.exit("error: config/nginx.conf.erb uses ERB beyond ENV[\"NAME\"] || default, which scripts/serve.py cannot render")
    return text


def procfile_words(root=ROOT):
    """The words of the Procfile's web command in the checkout at root."""
    line = next(l for l in (Path(root) / "Procfile").read_text().splitlines() if l.startswith("web:"))
    return shlex.split(line.removeprefix("web:"))


def procfile_app_command():
    """The words of the Procfile's web command after the buildpack's launcher."""
    words = procfile_words()
    if words[0] != PROXY_LAUNCHER:
        sys.exit(f"error: the Procfile's web command does not start with {PROXY_LAUNCHER}")
    return words[1:]


def prepare(workdir, host, port):
    """Write nginx.conf for host:port into workdir; (app command, environment for both processes)."""
    socket_path = str(workdir / "app.socket")
    env = {**os.environ, "PORT": str(port), "NGINX_LISTEN_ADDRESS": host, "NGINX_SOCKET": socket_path,
           "FER_READY_FILE": str(workdir / "app-initialized"),
           # gunicorn from the environment running this script, as an activated virtualenv would give
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    (workdir / "nginx.conf").write_text(render(TEMPLATE.read_text(), env))
    command = [word.replace(HEROKU_SOCKET, socket_path) for word in procfile_app_command()]
    return command, env


def nginx_binary():
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if not found:
        sys.exit("error: nginx is not installed (Debian/Ubuntu: apt-get install nginx-light; macOS: brew install nginx)")
    return found


def nginx_command(workdir, *extra):
    """nginx with its prefix and config in workdir; its own start-up messages to stderr where it takes
    -e (1.19.5 and later), else to its compiled-in log (stderr on Debian)."""
    binary = nginx_binary()
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
    takes_e = found is not None and tuple(map(int, found.groups())) >= (1, 19, 5)
    return [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), *(["-e", "stderr"] if takes_e else []), *extra]


def exit_status(process):
    """A child's status as a shell reports it: 128 + the signal for one killed by a signal."""
    code = process.returncode
    return 128 - code if code < 0 else code


def serve(host, port, timeout):
    """Run gunicorn and nginx until either ends or a signal arrives. Returns 0 after a signal;
    when either process ends on its own, as the buildpack's launcher does, its status (1 if 0)."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    with tempfile.TemporaryDirectory(prefix="fer-serve-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o711)  # nginx's worker runs as another user when started by root: it must reach the socket
        command, env = prepare(workdir, host, port)
        app = subprocess.Popen(command, cwd=ROOT, env=env)
        processes = [app]
        try:
            ready, deadline = Path(env["FER_READY_FILE"]), time.monotonic() + timeout
            while not ready.exists():
                if stopping:
                    return 0
                if app.poll() is not None:
                    print("error: the app stopped before it was ready", file=sys.stderr)
                    return exit_status(app) or 1
                if time.monotonic() > deadline:
                    print(f"error: the app did not become ready within {timeout:g} s", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            processes.append(subprocess.Popen(nginx_command(workdir), cwd=workdir, env=env))
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.1)
            if stopping:
                return 0
            ended = next(p for p in processes if p.poll() is not None)
            print(f"error: {'gunicorn' if ended is app else 'nginx'} stopped", file=sys.stderr)
            return exit_status(ended) or 1
        finally:
            for p in reversed(processes):
                if p.poll() is None:
                    p.send_signal(signal.SIGQUIT if p is not app else signal.SIGTERM)  # nginx: graceful stop
            for p in processes:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()


def check():
    """Render the template and have nginx test it; returns nginx's exit status."""
    with tempfile.TemporaryDirectory(prefix="fer-serve-") as tmp:
        prepare(Path(tmp), "0.0.0.0", os.environ.get("PORT", "8000"))
        return subprocess.run(nginx_command(Path(tmp), "-t"), cwd=tmp).returncode


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only render the nginx config and test it (default: serve)")
    p.add_argument("--host", default="0.0.0.0", help="address nginx listens on, with $PORT (default: 0.0.0.0, all interfaces)")
    p.add_argument("--ready-timeout", type=float, default=60, help="seconds the app may take to load (default: 60, Heroku's boot limit)")
    args = p.parse_args(argv)
    if args.check:
        return check()
    return serve(args.host, os.environ.get("PORT", "8000"), args.ready_timeout)


if __name__ == "__main__":
    sys.exit(main())
