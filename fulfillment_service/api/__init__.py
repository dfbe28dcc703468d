"""The Fulfillment Service's HTTP edge (contract: schemas/openapi/fulfillment-service.yaml): the routes, the API
representation of fulfillments, and the mapping of the use cases' exceptions to problem+json. Nothing below
this package knows HTTP."""

from fulfillment_service.api.routes import fulfillment_router, provider_control_router

__all__ = ["fulfillment_router", "provider_control_router"]
