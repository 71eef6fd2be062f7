"""Routes of django-demo (see demo/views.py)."""

from __future__ import annotations

from django.urls import path

from demo import views

urlpatterns = [
    path("", views.index),
    path("healthz", views.healthz),
    path("version", views.version),
    path("echo", views.echo),
]
