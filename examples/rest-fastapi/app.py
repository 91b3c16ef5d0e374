"""A Flame application that is a plain FastAPI app (no Flame SDK): the REST
shim. Run by uvicorn on the port the executor gives it ($PORT):

    uvicorn app:app --host 127.0.0.1 --port $PORT

Paths (shim/rest-openapi.yaml): GET /health; POST /sessions/{sid} (body:
common data); POST /sessions/{sid}/tasks/{tid} (body: input; 2xx: the
output, other statuses fail the task with the body as the message);
DELETE /sessions/{sid}.

It keeps a session's inputs and answers "<common data>: in1 | in2 ...";
"fail" answers 422, "crash" kills the server (the executor fails that task
and starts it again), "hang" never answers (the task times out after the
executor manager's --task-timeout; the server is stopped and started
again)."""
import asyncio
import os
import sys

from fastapi import FastAPI, Request, Response

app = FastAPI()
sessions = {}


@app.get("/health")
def health():
    return {"ok": True}


@app.post("/sessions/{sid}")
async def enter(sid: str, request: Request):
    sessions[sid] = {"prefix": await request.body(), "notes": []}
    return Response(status_code=204)


@app.post("/sessions/{sid}/tasks/{tid}")
async def task(sid: str, tid: str, request: Request):
    data = await request.body()
    s = sessions.setdefault(sid, {"prefix": b"", "notes": []})
    if data == b"fail":
        return Response(b"asked to fail", status_code=422)
    if data == b"crash":
        print("app.py: asked to crash", file=sys.stderr, flush=True)
        os._exit(3)
    if data == b"hang":
        await asyncio.sleep(1e9)
    s["notes"].append(data)
    return Response(s["prefix"] + b": " + b" | ".join(s["notes"]),
                    media_type="application/octet-stream")


@app.delete("/sessions/{sid}")
def leave(sid: str):
    sessions.pop(sid, None)
    return Response(status_code=204)
