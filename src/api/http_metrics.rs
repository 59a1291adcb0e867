//! HTTP request metrics for every listener (API, health, metrics): `accumen_http_requests_total
//! {listener,route,method,status}`, `accumen_http_request_duration_seconds{listener,route,method}`
//! and `accumen_http_requests_in_flight`. Refused connections are not counted here: they are
//! `accumen_api_refused_total{reason}` and `accumen_api_connections` (see `conn`).
//!
//! Invariants (label cardinality: every distinct label value is a series kept for ever, so a
//! client must not be able to create them):
//! - `route` is the matched resource's template (`/v1/blocks/{height}`), never the raw path; a
//!   request no resource matched is `unmatched`, whatever its path.
//! - `method` is one of the standard methods; anything else is `other`.
//! - `status` is the answer's code, which only the node's own handlers choose.
//! - `listener` is one of three fixed names.
//!
//! A request is in flight from when it enters this middleware until its answer's head is ready
//! or the client goes away (the guard is dropped with the request's future either way).

use std::time::Instant;

use accumen_actors::metrics::NodeMetrics;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

/// Route label of a request that matched no resource (404 for any path).
pub const UNMATCHED: &str = "unmatched";
/// Method label of a method outside the standard set.
pub const OTHER_METHOD: &str = "other";

/// The label for `method`: the standard methods by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

/// The label for a request's route: its resource template, or `unmatched`.
pub fn route_label(pattern: Option<String>) -> String {
    pattern.unwrap_or_else(|| UNMATCHED.to_owned())
}

/// Keeps `accumen_http_requests_in_flight` up while a request is handled.
#[derive(Debug)]
struct InFlight(NodeMetrics);

impl InFlight {
    fn new(m: &NodeMetrics) -> Self {
        m.http_requests_in_flight.inc();
        InFlight(m.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.http_requests_in_flight.dec();
    }
}

/// The middleware (`from_fn`): wrap it outermost so the duration covers the whole handler stack.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    metrics: NodeMetrics,
    listener: &'static str,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let _in_flight = InFlight::new(&metrics);
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    // Routing happens inside `next`, so the template is read from the answered request. An
    // error that escaped the handlers still has a status (its `ResponseError` answer).
    let (route, status) = match &res {
        Ok(r) => (route_label(r.request().match_pattern()), r.status()),
        Err(e) => (UNMATCHED.to_owned(), e.as_response_error().status_code()),
    };
    metrics.http_answered(listener, &route, method, status.as_u16(), seconds);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test as web_test;
    use actix_web::{App, HttpResponse, web};

    #[test]
    fn unknown_methods_collapse_into_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for m in ["FOO", "get", "PROPFIND", "X-RANDOM-123"] {
            let m = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&m), OTHER_METHOD, "{m}");
        }
    }

    #[actix_web::test]
    async fn series_use_templates_and_bounded_labels() {
        let m = NodeMetrics::default();
        let mm = m.clone();
        let app = web_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(move |req, next| {
                    track(req, next, mm.clone(), "api")
                }))
                .route(
                    "/v1/blocks/{height}",
                    web::get().to(|| async { HttpResponse::Ok().finish() }),
                )
                .default_service(web::to(|| async { HttpResponse::NotFound().finish() })),
        )
        .await;
        for path in ["/v1/blocks/1", "/v1/blocks/2", "/v1/blocks/abc"] {
            let res =
                web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request())
                    .await;
            assert_eq!(res.status(), 200);
        }
        for i in 0..50 {
            let method = Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            let req = web_test::TestRequest::default()
                .method(method)
                .uri(&format!("/random/{i}/path"))
                .to_request();
            let res = web_test::call_service(&app, req).await;
            assert_eq!(res.status(), 404);
        }
        let mut registry = prometheus_client::registry::Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("accumen_http_requests_total{"))
            .collect();
        for want in [
            "accumen_http_requests_total{listener=\"api\",route=\"/v1/blocks/{height}\",method=\"GET\",status=\"200\"} 3",
            "accumen_http_requests_total{listener=\"api\",route=\"unmatched\",method=\"other\",status=\"404\"} 50",
        ] {
            assert!(requests.contains(&want), "{want} missing:\n{text}");
        }
        assert_eq!(requests.len(), 2, "{text}");
        assert!(
            text.contains(
                "accumen_http_request_duration_seconds_count{listener=\"api\",route=\"unmatched\",method=\"other\"} 50"
            ),
            "{text}"
        );
        assert!(text.contains("accumen_http_requests_in_flight 0"), "{text}");
        assert!(!text.contains("/random/"), "{text}");
    }
}
