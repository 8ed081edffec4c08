from django.urls import path

from checkout import apis

urlpatterns = [
    path("api/sessions", apis.SessionCreateApi.as_view(), name="session-create"),
    path("api/checkout", apis.CheckoutApi.as_view(), name="checkout"),
    path("api/orders/<int:order_id>", apis.OrderDetailApi.as_view(), name="order-detail"),
]
