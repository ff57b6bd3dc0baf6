from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    """Lets a client ask for `Accept: text/csv`; the CSV endpoints stream their own body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only an error reaches a renderer here; it is written as one line of text.
        return str(data).encode() if data is not None else b""
