from django.urls import path

from catalog import apis, views

urlpatterns = [
    path("", views.storefront, name="storefront"),
    path("products/<int:product_id>", views.product_page, name="product-page"),
    path("api/products", apis.ProductListApi.as_view(), name="product-list"),
    # str, not int: an id that cannot exist answers the API's JSON 404, not the HTML one of the URL resolver.
    path("api/products/<str:product_id>", apis.ProductDetailApi.as_view(), name="product-detail"),
    path("api/inventory", apis.InventoryBatchApi.as_view(), name="inventory-list"),
    path("api/inventory/<str:product_id>", apis.InventoryApi.as_view(), name="inventory-detail"),
    path("api/metrics", apis.MetricsApi.as_view(), name="metrics"),
]
