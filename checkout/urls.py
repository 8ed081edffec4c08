from django.urls import path

from checkout import apis, views

urlpatterns = [
    path("cart", views.cart_page, name="cart-page"),
    path("orders/<int:order_id>", views.order_page, name="order-page"),
    path("api/sessions", apis.SessionCreateApi.as_view(), name="session-create"),
    path("api/checkout", apis.CheckoutApi.as_view(), name="checkout"),
    path("api/cart", apis.CartApi.as_view(), name="cart"),
    path("api/cart/checkout", apis.CartCheckoutApi.as_view(), name="cart-checkout"),
    path("api/cart/items/<str:product_id>", apis.CartItemApi.as_view(), name="cart-item"),
    # str, not int: any id answers the API's JSON 404 rather than the URL resolver's HTML one.
    path("api/orders/<str:order_id>", apis.OrderDetailApi.as_view(), name="order-detail"),
]
