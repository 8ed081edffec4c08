"""API view bases the apps share."""

from rest_framework.views import APIView

NO_STORE = "no-store"


# Every answer, errors included, is live or belongs to one shopper: no browser or CDN may keep a copy. A comment,
# not a docstring: drf-spectacular would show a docstring as every endpoint's description.
class NoStoreApi(APIView):
    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = NO_STORE
        return response
