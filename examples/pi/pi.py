"""Monte-Carlo pi in Python, both sides, on the `flame` binding.

    python3 pi.py [TASKS [SAMPLES]]   # registers this file as a service and runs it
    python3 pi.py --serve             # what the executor manager starts
"""
import os
import random
import sys
import time

import flame


class PiService(flame.FlameService):
    def on_task_invoke(self, ctx):
        n = int(ctx.input)
        rnd = random.Random(int(ctx.task_id))
        hits = sum(1 for _ in range(n) if rnd.random() ** 2 + rnd.random() ** 2 <= 1.0)
        return str(hits).encode()


def main():
    if sys.argv[1:] == ["--serve"]:
        flame.run(PiService())
        return 0
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    t0 = time.time()
    try:
        flame.register_application("pi-py", {"command": sys.executable,
                                             "arguments": [os.path.abspath(__file__), "--serve"]})
    except flame.FlameError as e:
        if "already exists" not in str(e):
            raise
    with flame.create_session("pi-py") as s:
        hits = sum(int(h) for h in s.map([str(samples).encode()] * tasks))
    pi = 4.0 * hits / (tasks * samples)
    print(f"pi ~= {pi:.6f} ({tasks} tasks x {samples} samples) in {time.time() - t0:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
