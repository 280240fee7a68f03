# framesift container. CPU by default:
#   docker build -t framesift .
#   docker run --rm -v "$PWD/out:/out" framesift run /app/configs/file.yaml
# GPU variant (CUDA base image; the gpu extra swaps onnxruntime for onnxruntime-gpu below):
#   docker build -t framesift:gpu --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg EXTRAS=clip,gpu,tensorrt,mqtt,webhook .
#   docker run --rm --gpus all framesift:gpu doctor
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG EXTRAS=clip,mqtt,webhook
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# "video" exposes NVDEC/NVENC inside the container (without it decoder: auto falls back to CPU decode).
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg python3 python3-pip python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY framesift ./framesift
COPY configs ./configs
RUN pip install --upgrade pip && pip install ".[${EXTRAS}]"
# onnxruntime (clip extra) and onnxruntime-gpu write the same package: a GPU image keeps only the GPU one.
RUN case ",${EXTRAS}," in *,gpu,*|*,gpu-cuda13,*) \
      pip uninstall -y onnxruntime && pip install "onnxruntime-gpu>=1.17";; esac
RUN useradd --create-home --uid 1000 framesift
USER framesift
ENTRYPOINT ["framesift"]
CMD ["--help"]
