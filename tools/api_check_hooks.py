"""schemathesis hooks for tools/api-check.sh: send `application/zip` bodies as the raw bytes
generated for the document's binary schema (schemathesis has no serializer for zip of its own)."""
import schemathesis


@schemathesis.serializer("application/zip")
def zip_body(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return {"data": bytes(value)}
    return {"data": str(value).encode()}
