"""POST /v1/calls/{id}/status: the signed call-status webhook (SPEC 6)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from calls.models import CallLog, CallStatus
from engine.call_status import StatusReport, record_call_status
from engine.signing import HEADER, BadSignature, verify


class StatusEventSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=128)
    status = serializers.CharField(max_length=32)
    occurred_at = serializers.DateTimeField()
    end_reason = serializers.CharField(max_length=200, required=False, allow_blank=True)
    duration_s = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    transcript = serializers.ListField(child=serializers.DictField(), required=False)
    recording_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    post_call = serializers.DictField(required=False)
    provider_call_id = serializers.CharField(max_length=128, required=False, allow_blank=True)


class CallStatusWebhook(APIView):
    # The signature is the authentication: no session, no token, no CSRF.
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=StatusEventSerializer,
        parameters=[
            OpenApiParameter(
                HEADER,
                location="header",
                required=True,
                description="t=<unix seconds>,v1=<hex HMAC-SHA256>",
            )
        ],
        responses={200: None},
    )
    def post(self, request, pk: int):
        raw = request.body  # read before parsing: the signature covers the exact bytes
        try:
            verify(request.headers.get(HEADER), raw)
        except BadSignature as exc:
            return Response(
                {"error": "bad_signature", "detail": str(exc)}, status=status.HTTP_401_UNAUTHORIZED
            )
        call = get_object_or_404(CallLog, pk=pk)
        if not isinstance(request.data, dict):
            return Response(
                {"error": "invalid", "detail": "send a JSON object"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        reported = request.data.get("status")
        if reported not in CallStatus.values:
            return Response(
                {
                    "error": "unknown_status",
                    "detail": f"unknown call status {reported!r}; expected one of "
                    f"{', '.join(CallStatus.values)}",
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        event = StatusEventSerializer(data=request.data)
        event.is_valid(raise_exception=True)
        data = event.validated_data
        recorded = record_call_status(
            call.pk,
            StatusReport(
                event_id=data["event_id"],
                status=CallStatus(data["status"]),
                occurred_at=data["occurred_at"],
                end_reason=data.get("end_reason"),
                duration_s=data.get("duration_s"),
                transcript=data.get("transcript"),
                recording_url=data.get("recording_url"),
                post_call=data.get("post_call"),
                provider_call_id=data.get("provider_call_id"),
                payload=request.data,
            ),
        )
        return Response(
            {
                "result": recorded.outcome,
                "call_id": call.pk,
                "status": recorded.call.status,
                "note": recorded.note,
            }
        )
