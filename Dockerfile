# The image every Python component of the suite runs in: Python and the pinned
# requirements. docker-compose.yml mounts the source tree at /app and picks
# each process with `command:`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && useradd --create-home --uid 10001 app
USER app
