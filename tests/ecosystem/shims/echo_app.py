"""The REST shim at its cheapest in FastAPI (scripts/bench_shims.sh): every
task answers its input; no sessions kept (enter/leave answer 404)."""
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.get("/health")
def health():
    return {"ok": True}


@app.post("/sessions/{sid}/tasks/{tid}")
async def task(sid: str, tid: str, request: Request):
    return Response(await request.body(), media_type="application/octet-stream")
