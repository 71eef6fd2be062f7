"""django-demo: a minimal Django project that bgci's docs and end-to-end tests deploy blue-green."""
