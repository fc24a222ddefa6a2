"""Checks live HTTP answers against docs/openapi.yaml.

usage: openapi_check.py SPEC

Reads one JSON object a line on stdin and writes one JSON verdict a line
on stdout, so one Python process serves a whole test file:

  {"method": "GET", "target": "/jobs?limit=2", "status": 200,
   "headers": {"content-type": ["application/json"], ...},
   "body": "...", "body_len": 3, "binary": false}
      -> {"op": "listJobs", "errors": ["..."]}     (no errors: it conforms)

  {"cmd": "coverage"}
      -> {"operations": {"listJobs": ["200", "400"], ...}, "seen": {...}}

An answer conforms when its path and method are documented (a method
that is not must be the documented 405), its status is one of the
operation's responses, the headers marked required are there, every
documented header present matches its schema, the Content-Type is one of
the response's media types, and a JSON body validates against the media
type's schema (JSON Schema 2020-12, as OpenAPI 3.1 says), $refs resolved
in the document.  Bodies of HEAD, 204 and 304 answers must be empty.
"""

import datetime
import json
import re
import sys
import urllib.parse

import jsonschema
import yaml


METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
           "trace")


def pointer(doc, ref):
    if not ref.startswith("#/"):
        raise ValueError("only local $refs are supported: %s" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def deref(doc, node):
    """A Response, Header or Parameter object, following $refs."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(doc, node["$ref"])
        seen += 1
        if seen > 32:
            raise ValueError("a $ref loop")
    return node


def date_time(value):
    if not isinstance(value, str):
        return True
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
                    r"(Z|[+-]\d\d:\d\d)$", value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class Checker:

    def __init__(self, spec_path):
        with open(spec_path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)

        if not str(self.doc.get("openapi", "")).startswith("3.1"):
            raise SystemExit("openapi_check: an OpenAPI 3.1 document is "
                             "needed (its schemas are JSON Schema 2020-12)")

        self.resolver = jsonschema.RefResolver("", self.doc)
        self.formats = jsonschema.FormatChecker(formats=())
        self.formats.checks("date-time")(date_time)

        self.templates = []
        for path in self.doc.get("paths", {}):
            parts = path.strip("/").split("/") if path != "/" else []
            literal = sum(1 for p in parts if not p.startswith("{"))
            self.templates.append((path, parts, literal))

        # most literal segments first: /jobs/export before /jobs/{id}
        self.templates.sort(key=lambda t: -t[2])

        self.seen = {}

    def operations(self):
        ops = {}
        for path, item in self.doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    op = item[method]
                    ops[op["operationId"]] = sorted(op["responses"])
        return ops

    def match_path(self, path):
        parts = path.strip("/").split("/") if path.strip("/") else []
        for template, tparts, _ in self.templates:
            if len(tparts) != len(parts):
                continue
            if all(t == p or (t.startswith("{") and p)
                   for t, p in zip(tparts, parts)):
                return template
        return None

    def validate(self, schema, instance, where, errors):
        validator = jsonschema.Draft202012Validator(
            schema, resolver=self.resolver, format_checker=self.formats)
        for e in sorted(validator.iter_errors(instance), key=str):
            at = "/".join(str(p) for p in e.absolute_path)
            errors.append("%s%s: %s" % (where, " at " + at if at else "",
                                        e.message))

    def check(self, rec):
        errors = []
        method = rec["method"].lower()
        status = str(rec["status"])
        headers = {k.lower(): v for k, v in rec.get("headers", {}).items()}
        body = rec.get("body", "")
        size = rec.get("body_len", len(body))
        target = urllib.parse.urlsplit(rec["target"])

        template = self.match_path(target.path)
        if template is None:
            return {"op": None,
                    "errors": ["%s is not documented" % target.path]}

        item = self.doc["paths"][template]
        op = item.get(method)
        if op is None and method == "head":
            op = item.get("get")

        if op is None:
            # a method the path does not take: the shared 405
            name = "%s %s" % (rec["method"], template)
            response = self.doc["components"]["responses"].get(
                "MethodNotAllowed")
            if status != "405":
                errors.append("%s is not documented; the answer should be "
                              "405, not %s" % (name, status))
            if response is None:
                errors.append("components.responses.MethodNotAllowed is "
                              "missing")
                return {"op": name, "errors": errors}
        else:
            name = op["operationId"]
            responses = op.get("responses", {})
            response = (responses.get(status)
                        or responses.get(status[0] + "XX")
                        or responses.get("default"))
            if response is None:
                return {"op": name,
                        "errors": ["status %s is not documented for %s "
                                   "(documented: %s)"
                                   % (status, name,
                                      ", ".join(sorted(responses)))]}
            self.seen.setdefault(name, set()).add(status)

        response = deref(self.doc, response)
        self.check_headers(response, headers, errors)
        self.check_content(response, method, status, headers, body, size,
                           rec.get("binary", False), errors)

        return {"op": name, "errors": errors}

    def check_headers(self, response, headers, errors):
        for hname, header in response.get("headers", {}).items():
            header = deref(self.doc, header)
            values = headers.get(hname.lower())
            if not values:
                if header.get("required"):
                    errors.append("header %s is missing" % hname)
                continue
            schema = header.get("schema", {})
            value = values[0]
            if schema.get("type") == "integer":
                if not re.match(r"^-?\d+$", value):
                    errors.append("header %s: %r is not an integer"
                                  % (hname, value))
                    continue
                value = int(value)
            self.validate(schema, value, "header " + hname, errors)

    def check_content(self, response, method, status, headers, body, size,
                      binary, errors):
        content = response.get("content")
        no_body = method == "head" or status in ("204", "304")

        if no_body or not content:
            if size:
                errors.append("a body of %d bytes where none is documented"
                              % size)
            return

        ctype = (headers.get("content-type") or [""])[0]
        mtype = ctype.split(";")[0].strip().lower()
        media = None
        for documented, obj in content.items():
            d = documented.lower()
            if d == mtype or (d.endswith("/*")
                              and mtype.startswith(d[:-1])) or d == "*/*":
                media = obj
                break

        if media is None:
            errors.append("Content-Type %r is not one of %s"
                          % (ctype, ", ".join(content)))
            return

        schema = media.get("schema")
        if schema is None:
            return

        if mtype == "application/json" or mtype.endswith("+json"):
            try:
                instance = json.loads(body)
            except ValueError as e:
                errors.append("the body is not JSON: %s" % e)
                return
            self.validate(schema, instance, "body", errors)
            return

        if binary:
            # bytes: only a schema that allows a string can take them
            if deref(self.doc, schema).get("type") not in ("string", None):
                errors.append("binary content for a non-string schema")
            return

        self.validate(schema, body, "body", errors)

    def coverage(self):
        return {"operations": self.operations(),
                "seen": {k: sorted(v) for k, v in self.seen.items()}}


def main():
    checker = Checker(sys.argv[1])
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("cmd") == "coverage":
            out = checker.coverage()
        else:
            try:
                out = checker.check(rec)
            except Exception as e:      # a broken document is a failure
                out = {"op": None, "errors": ["checker: %r" % e]}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
