"""The Order Service's HTTP edge (contract: schemas/openapi/order-service.yaml): the routes, the parsing of what
a client sends, the API representation of orders, and the mapping of the use cases' exceptions to problem+json.
Nothing below this package knows HTTP."""

from order_service.api.routes import order_router

__all__ = ["order_router"]
