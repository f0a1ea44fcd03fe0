"""Lines from a file, a followed file, a TCP line server or an HTTP stream, as events.

Entry point ``mantis.examples.lines:job``.  Parameter ``input`` names where lines come
from: ``file:/path`` (read once, then the job completes), ``tail:/path`` (followed like
``tail -F``), ``tcp:PORT`` or ``tcp:HOST:PORT`` (a line server producers connect to) or
an ``http://`` / ``https://`` URL (its streaming response).  With ``json`` true each
line is parsed as a JSON event and lines that are not JSON are skipped and counted;
otherwise each line becomes ``{"line": text}``.  ``contains`` keeps only lines holding
that text (before parsing).
"""
from __future__ import annotations

import logging

import reactivex
import ujson
from reactivex import operators as ops

from mantis.examples.parameters import parsed_by
from mantis.runtime.line_sources import file_lines, http_lines, tcp_lines
from mantis.sdk.job_dsl import Context, Job, ParameterDefinition, ParameterError

log = logging.getLogger("mantis.examples.lines")


def parse_input(text: str) -> tuple[str, tuple]:
    """``input`` -> (kind, arguments); ParameterError saying the accepted forms."""
    kind, _, rest = text.partition(":")
    if kind in ("file", "tail") and rest:
        return kind, (rest,)
    if kind == "tcp" and rest:
        host, _, port = rest.rpartition(":")
        if port.isdigit() and 0 < int(port) < 65536:
            return kind, (int(port), host or "127.0.0.1")
    if kind in ("http", "https") and rest.startswith("//"):
        return "http", (text,)
    raise ParameterError(f"input {text!r} must be file:PATH, tail:PATH, tcp:[HOST:]PORT or an http(s):// URL")


_valid_input = parsed_by(parse_input, ParameterError)


def line_events(context: Context) -> reactivex.Observable:
    """The source: the input's lines."""
    kind, args = parse_input(context.parameters["input"])
    if kind == "file":
        return file_lines(context, *args)
    if kind == "tail":
        return file_lines(context, args[0], follow=True)
    if kind == "tcp":
        return tcp_lines(context, *args)
    return http_lines(context, *args)


def to_events(lines: reactivex.Observable, context: Context) -> reactivex.Observable:
    """The stage: keep lines with ``contains``; JSON events, or ``{"line": text}``."""
    contains, as_json = context.parameters["contains"], context.parameters["json"]
    skipped = [0]

    def parse(line: str):
        try:
            return ujson.loads(line)
        except ValueError:
            skipped[0] += 1
            if skipped[0] in (1, 10, 100, 1000) or skipped[0] % 10000 == 0:
                log.info("%d line(s) skipped: not JSON", skipped[0])
            return None

    def has_text(line: str) -> bool:
        return contains in line

    if contains:
        lines = lines.pipe(ops.filter(has_text))
    if not as_json:
        return lines.pipe(ops.map(lambda line: {"line": line}))
    return lines.pipe(ops.map(parse), ops.filter(lambda event: event is not None))


job = Job(
    name="lines",
    description="Lines from a file, a followed file, a TCP line server or an HTTP stream, as events.",
    source=line_events,
    stage=to_events,
    parameters=[
        ParameterDefinition("input", "string", required=True,
                            validator=(_valid_input, "must be file:PATH, tail:PATH, tcp:[HOST:]PORT or an http(s) URL"),
                            description="where the lines come from"),
        ParameterDefinition("json", "bool", default=False, description="parse each line as a JSON event"),
        ParameterDefinition("contains", "string", default="", description="keep only lines holding this text"),
    ],
)
