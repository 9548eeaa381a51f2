"""How a worker's logs look: text lines (the default) or JSON lines (``log.format = "json"``), for every logger.

An access-log record carries its fields in ``record.access`` (proxy/app.py): the text format shows them in its
message, the JSON format as keys of their own next to ``time``, ``level``, ``logger`` and ``message``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ACCESS_FIELDS = "access"  # the attribute of a record holding the access log's fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601 with milliseconds), level, logger, message,
    the access log's fields when the record has them, and a traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(fmt: Literal["text", "json"]) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: Literal["text", "json"]) -> None:
    """The root logger's one handler (stderr) in the chosen format. JSON also takes over uvicorn's own loggers
    (which uvicorn configures itself from its LOGGING_CONFIG when the server is made, after this), so that every
    line a worker logs is JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler])  # as basicConfig does: a no-op when already set up
    if fmt != "json":
        return
    from uvicorn.config import LOGGING_CONFIG  # uvicorn.Config's default log_config: the same dict

    for name in ("default", "access"):
        LOGGING_CONFIG["formatters"][name] = {"()": f"{__name__}.JsonFormatter"}
