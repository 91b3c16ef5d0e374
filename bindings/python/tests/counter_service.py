"""A Flame service in Python on the `flame` binding: keeps a counter across
the tasks of its session; b"fail" fails the task."""
import flame


class Counter(flame.FlameService):
    def on_session_enter(self, ctx):
        self.count = 0
        self.common = ctx.common_data or b""

    def on_task_invoke(self, ctx):
        if ctx.input == b"fail":
            raise ValueError("asked to fail")
        if ctx.input == b"common":
            return self.common
        self.count += 1
        return str(self.count).encode()


if __name__ == "__main__":
    flame.run(Counter())
