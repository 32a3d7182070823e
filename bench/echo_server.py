"""The HTTP floor: an OpenAI-shaped /v1/completions that answers at once, without a model (one token, `"a"`), on the
same FastAPI/uvicorn stack as `fastserve serve`. `speed_gpu.py --http-floor` sends it the intake burst: the time the
benchmark client and the web stack alone take for the same requests.

    python bench/echo_server.py PORT
"""
import sys
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()

@app.get("/health")
async def health(): return {"status": "ok"}

@app.post("/v1/completions")
async def completions(request: Request):
    body = await request.json()
    n = len(body["prompt"]) if isinstance(body["prompt"], list) else len(body["prompt"].split())
    return {"id": "cmpl-echo", "object": "text_completion", "model": body.get("model"), "choices": [{"index": 0, "text": "a", "finish_reason": "length"}],
            "usage": {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}}

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
