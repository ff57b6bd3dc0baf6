"""Lead filters shared by the API and the Leads tab (django-filter)."""

import django_filters
from django.db.models import Q

from leads.models import ExecutionStatus, Lead


class LeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ExecutionStatus.choices, method="by_status")
    node = django_filters.CharFilter(field_name="execution__node__key")
    needs_review = django_filters.BooleanFilter(method="by_review")
    q = django_filters.CharFilter(method="search", help_text="name or phone contains")

    class Meta:
        model = Lead
        fields = ["status", "node", "needs_review", "q"]

    def by_status(self, queryset, name, value):
        if value == ExecutionStatus.PENDING:
            return queryset.filter(execution__isnull=True)
        return queryset.filter(execution__status=value)

    def by_review(self, queryset, name, value):
        if value:
            return queryset.filter(execution__needs_review=True)
        # A pending lead (no execution yet) does not need review either.
        return queryset.filter(Q(execution__isnull=True) | Q(execution__needs_review=False))

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(phone__contains=value))
