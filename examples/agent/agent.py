"""An agent whose memory lives in its service: Flame binds an executor to a
session, so the agent process keeps its state across the session's tasks.
Each turn fans its tool calls out as tasks of a second session.

    python3 agent.py                 # registers the services, talks to the agent
    python3 agent.py --serve agent   # what the executor manager starts
    python3 agent.py --serve tool
"""
import json
import os
import sys

import flame


class Tool(flame.FlameService):
    """A 'tool': here it upper-cases a word (stand-in for a search, a model call...)."""

    def on_task_invoke(self, ctx):
        return ctx.input.upper()


class Agent(flame.FlameService):
    def on_session_enter(self, ctx):
        self.memory = []  # survives across the tasks of this session
        flame.connect(os.environ["FLAME_ENDPOINT"])
        self.tools = flame.create_session("agent-tools")

    def on_task_invoke(self, ctx):
        message = ctx.input.decode()
        self.memory.append(message)
        # fan the tool calls out as tasks of another session, from inside a task
        results = [r.decode() for r in self.tools.map([w.encode() for w in message.split()])]
        return json.dumps({"turn": len(self.memory), "memory": self.memory,
                           "tools": results}).encode()

    def on_session_leave(self):
        self.tools.close()


def register(name, role):
    try:
        # sandboxed (the node's default level), with the host's network:
        # the agent calls the session manager to fan out its tool calls
        flame.register_application(name, {"command": sys.executable,
                                          "arguments": [os.path.abspath(__file__), "--serve", role],
                                          "network": "host"})
    except flame.FlameError as e:
        if "already exists" not in str(e):
            raise


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        flame.run(Agent() if sys.argv[2] == "agent" else Tool())
        return 0
    register("agent", "agent")
    register("agent-tools", "tool")
    with flame.create_session("agent", max_instances=1) as s:
        for msg in ["hello flame", "remember me", "what did I say"]:
            reply = json.loads(s.invoke(msg.encode()))
            print(f"turn {reply['turn']}: tools={reply['tools']} memory={reply['memory']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
