"""A tiny real program that behaves like darknet on a terminal, for the runner's tests.

It prints pjreddie-shaped iteration lines and can: ask hank-ai's prompt, ignore SIGINT (and SIGTERM),
print hank-ai's fatal banner and then hang, start a grandchild in its own process group, write invalid UTF-8.
"""
import argparse
import os
import signal
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--iterations", type=int, default=5)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--prompt", action="store_true")
p.add_argument("--ignore-sigint", action="store_true")
p.add_argument("--ignore-sigterm", action="store_true")
p.add_argument("--banner-then-hang", action="store_true")
p.add_argument("--grandchild", action="store_true", help="fork a child that ignores INT/TERM and sleeps")
p.add_argument("--garbage", action="store_true")
p.add_argument("--forever", action="store_true", help="after the iterations, sleep forever")
p.add_argument("--exit", type=int, default=0)
p.add_argument("--print-pid", action="store_true")
a = p.parse_args()

if a.ignore_sigint:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if a.ignore_sigterm:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if a.grandchild and os.fork() == 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.close(1)
    os.close(2)
    time.sleep(600)
    os._exit(0)

if a.print_pid:
    print(f"pid={os.getpid()}")
print("tiny")
print("layer     filters    size              input                output")
if a.prompt:
    sys.stdout.write('Type "yes" to begin training, or anything else to quit: ')
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    if answer != "yes":
        print("not training")
        sys.exit(3)
    print("starting")
if a.garbage:
    sys.stdout.buffer.write(b"bad bytes: \xff\xfe\x80 end\n")
    sys.stdout.flush()
avg = 30.0
for i in range(1, a.iterations + 1):
    loss = 30.0 / i
    avg = 0.9 * avg + 0.1 * loss
    print("Loaded: 0.000100 seconds")
    print(f"{i}: {loss:.6f}, {avg:.6f} avg, 0.001000 rate, 0.100000 seconds, {i * 4} images", flush=True)
    if a.sleep:
        time.sleep(a.sleep)
if a.banner_then_hang:
    print("free(): invalid next size (normal)")
    print("calling Darknet's fatal error handler due to signal #6")
    print("* Error message:  signal handler invoked for signal #6 (Aborted)", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
print("Saving weights to backup/tiny_final.weights", flush=True)
if a.forever:
    while True:
        time.sleep(1)
sys.exit(a.exit)
