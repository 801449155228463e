#!/usr/bin/env python3
"""A small online judge on `jailpool serve` (Debian's python3-grpcio and python3-protobuf).

It compiles a C++ solution once, in a job, keeping the binary in the server's file cache; runs
that binary on 100 tests (8 requests in flight on one ExecStream), without sending it again;
then judges an interactive problem (guess the number by binary search, with an interactor)
with a correct and a wrong solution. It prints a verdict per test and exits 0 when every
verdict is the expected one.

The stubs come from proto/ at build time (build/python):
    python3 examples/judge.py --stubs build/python --server unix:/run/jailpool/serve.sock
The server needs a profile that can run g++ (configs/cpp.textproto in its --profile-dir).
"""
import argparse
import os
import random
import sys
import threading

SOLUTION = r"""
#include <iostream>
int main() { long long a, b; std::cin >> a >> b; std::cout << a + b << "\n"; }
"""

INTERACTOR = r"""
#include <cstdio>
#include <cstdlib>
// argv[1]: the secret in 1..N; N = 1000; at most 10 guesses. Exit 0: accepted; 1: wrong.
int main(int argc, char** argv) {
  long secret = std::atol(argv[1]), n = 1000;
  std::printf("%ld\n", n);
  std::fflush(stdout);
  for (int guesses = 1; guesses <= 10; ++guesses) {
    long g;
    if (std::scanf(" ? %ld", &g) != 1) { std::fprintf(stderr, "wrong answer: no guess\n"); return 1; }
    if (g == secret) { std::printf("=\n"); std::fflush(stdout); return 0; }
    std::printf(g > secret ? "<\n" : ">\n");
    std::fflush(stdout);
  }
  std::fprintf(stderr, "wrong answer: more than 10 guesses\n");
  return 1;
}
"""

GUESS_CORRECT = r"""
#include <cstdio>
int main() {
  long lo = 1, hi;
  if (std::scanf("%ld", &hi) != 1) return 1;
  while (lo <= hi) {
    long mid = lo + (hi - lo) / 2;
    std::printf("? %ld\n", mid);
    std::fflush(stdout);
    char r[4];
    if (std::scanf("%3s", r) != 1 || r[0] == '=') return 0;
    if (r[0] == '<') hi = mid - 1; else lo = mid + 1;
  }
}
"""

# Guesses upwards from 1: right in the end, but past the 10 guesses allowed.
GUESS_WRONG = r"""
#include <cstdio>
int main() {
  long n;
  if (std::scanf("%ld", &n) != 1) return 1;
  for (long g = 1; g <= n; ++g) {
    std::printf("? %ld\n", g);
    std::fflush(stdout);
    char r[4];
    if (std::scanf("%3s", r) != 1 || r[0] == '=') return 0;
  }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="unix:/run/jailpool/serve.sock")
    ap.add_argument("--token", default=os.environ.get("JAILPOOL_TOKEN", ""),
                    help="bearer token (TCP servers)")
    ap.add_argument("--stubs", default=os.path.join(os.path.dirname(__file__), "..", "build", "python"),
                    help="the generated Python stubs (build/python)")
    ap.add_argument("--profile", default="cpp", help="the server's profile with g++")
    ap.add_argument("--tests", type=int, default=100)
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.stubs))
    import grpc
    import jailpool_pb2 as jp
    import service_pb2 as sp
    import service_pb2_grpc as sg

    metadata = [("authorization", "Bearer " + args.token)] if args.token else []
    stub = sg.ExecutorStub(grpc.insecure_channel(args.server))

    def job(argv, **kw):
        spec = jp.JobSpec(argv=argv, profile=args.profile, **kw)
        spec.limits.wall_time_ms = spec.limits.wall_time_ms or 10000
        return spec

    def exec1(request):
        return stub.Exec(request, metadata=metadata, timeout=300)

    def compile_cpp(name, source):
        """Compiles in a job; the binary stays in the server's cache. Returns its file_id."""
        spec = job(["g++", "-O2", "-o", name, name + ".cc"],
                   copy_in=[jp.CopyIn(content=source.encode(), dst=name + ".cc")],
                   copy_out=[jp.CopyOut(path=name, cache=True)],
                   limits=jp.Limits(wall_time_ms=60000, cpu_time_ms=30000))
        r = exec1(sp.ExecRequest(id="compile " + name, jobs=[spec])).results[0]
        if r.status != jp.OK or r.files[0].error:
            sys.exit(f"compile {name}: {jp.Status.Name(r.status)} {r.message} "
                     f"{r.files[0].error if r.files else ''}\n{r.stderr}")
        print(f"compiled {name}: {r.files[0].size} bytes, file_id {r.files[0].file_id[:16]}..., "
              f"{r.wall_time_us / 1000:.0f} ms")
        return r.files[0].file_id

    def binary(file_id, name):
        return jp.CopyIn(file_id=file_id, dst=name, mode=0o555)

    failures = 0

    # 1. A batch of tests: one binary, sent once, run 100 times, 8 requests in flight.
    solution = compile_cpp("sol", SOLUTION)
    rng = random.Random(12)
    tests = [(rng.randint(-10**12, 10**12), rng.randint(-10**12, 10**12)) for _ in range(args.tests)]
    in_flight = threading.Semaphore(8)

    def requests():
        for i, (a, b) in enumerate(tests):
            in_flight.acquire()
            spec = job(["./sol"], copy_in=[binary(solution, "sol")],
                       stdin=jp.Stream(content=f"{a} {b}\n".encode()),
                       limits=jp.Limits(cpu_time_ms=1000, wall_time_ms=5000,
                                        memory_bytes=64 << 20))
            yield sp.ExecRequest(id=str(i), jobs=[spec])

    verdicts = {}
    for response in stub.ExecStream(requests(), metadata=metadata, timeout=600):
        in_flight.release()
        i = int(response.id)
        a, b = tests[i]
        if response.error:
            verdict = "ERROR " + response.error
        else:
            r = response.results[0]
            if r.status != jp.OK:
                verdict = jp.Status.Name(r.status)
            else:
                verdict = "AC" if r.stdout.strip() == str(a + b) else "WA"
        verdicts[i] = verdict
    for i in range(len(tests)):
        print(f"test {i + 1:3}: {verdicts.get(i, 'NO ANSWER')}")
        failures += verdicts.get(i) != "AC"

    # 2. An interactive problem: the interactor (job 0) and a solution (job 1), each one's
    # stdout the other's stdin. The interactor's exit is the verdict.
    interactor = compile_cpp("interactor", INTERACTOR)
    contestants = {"correct": compile_cpp("guess_correct", GUESS_CORRECT),
                   "wrong": compile_cpp("guess_wrong", GUESS_WRONG)}
    expected = {"correct": "AC", "wrong": "WA"}
    for name, file_id in contestants.items():
        for secret in (11, 500, 737, 1000):
            pipes = []
            for src, dst in ((0, 1), (1, 0)):
                p = sp.Pipe()
                getattr(p, "from").CopyFrom(sp.PipeEnd(job=src, fd=1))  # `from`: a Python keyword
                p.to.CopyFrom(sp.PipeEnd(job=dst, fd=0))
                pipes.append(p)
            request = sp.ExecRequest(
                id=f"{name}-{secret}",
                jobs=[job(["./interactor", str(secret)], copy_in=[binary(interactor, "interactor")],
                          limits=jp.Limits(wall_time_ms=5000)),
                      job(["./guess"], copy_in=[binary(file_id, "guess")],
                          limits=jp.Limits(cpu_time_ms=1000, wall_time_ms=5000))],
                pipes=pipes)
            inter, sol = exec1(request).results
            if inter.status == jp.OK:
                verdict = "AC"
            elif inter.status == jp.NONZERO_EXIT:
                verdict = "WA"
            elif sol.status in (jp.TIME_LIMIT_EXCEEDED, jp.WALL_TIME_LIMIT_EXCEEDED):
                verdict = "TLE"
            else:
                verdict = f"JUDGE ERROR ({jp.Status.Name(inter.status)}: {inter.message})"
            detail = inter.stderr.strip()
            print(f"interactive {name:7} secret {secret:4}: {verdict}" + (f" ({detail})" if detail else ""))
            failures += verdict != expected[name]

    print(f"{failures} unexpected verdict(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
