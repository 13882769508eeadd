# stchat web app on a CUDA GPU.   docker build -t stchat . && docker run --gpus all -p 7860:7860 stchat
# Weights download from the hub on first start (mount a volume at /data to keep them), or point
# STCHAT_MODEL at a checkpoint directory mounted into the container.
# Keep CUDA's major version equal to the one torch was built with (python -c "import torch; print(torch.version.cuda)"):
# flash-attn refuses to compile against a different major.
ARG CUDA_VERSION=12.8.1

# ---- build stage: flash-attn compiles CUDA kernels against the installed torch, which needs nvcc (devel image).
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu22.04 AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential git \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install --upgrade pip setuptools wheel packaging ninja psutil \
 && pip install "$(grep -E '^torch==' /tmp/requirements.txt)"
# MAX_JOBS bounds the compiler's memory use (each job can take several GB).
ARG MAX_JOBS=4
RUN MAX_JOBS=${MAX_JOBS} pip wheel --no-build-isolation --no-deps --wheel-dir /wheels "flash-attn>=2.5"

# ---- runtime stage: CUDA runtime only, the prebuilt flash-attn wheel, stchat with its GPU extras.
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY --from=build /wheels /wheels
WORKDIR /app
# The locked set first (exact pins the tests passed with), then stchat and its GPU extras on top of it.
COPY requirements.txt ./
RUN pip install --upgrade pip && pip install -r requirements.txt /wheels/*.whl && rm -rf /wheels
COPY pyproject.toml README* ./
COPY stchat ./stchat
# Editable install: the app finds assets/ next to the package, as in a checkout.
RUN pip install -c requirements.txt -e ".[gpu]" --config-settings editable_mode=compat
COPY app.py ./
COPY assets ./assets

RUN useradd --create-home --uid 1000 stchat && mkdir -p /data && chown -R stchat /app /data
USER stchat
ENV STCHAT_MODEL=appletea2333/LLaVA-ST-Qwen2-7B \
    HF_HOME=/data/hf \
    GRADIO_ANALYTICS_ENABLED=False
VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
# 0.0.0.0: reachable through the published port (the app's own default is loopback only).
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
