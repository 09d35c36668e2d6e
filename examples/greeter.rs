//! A small gRPC service, `hello.Greeter`, written out by hand as `tonic-build` would
//! generate it from this `hello.proto`, so that the example and the tests need no `protoc`:
//!
//! ```proto
//! syntax = "proto3";
//! package hello;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```
//!
//! The example `grpc` serves it; the system tests (`tests/system/grpc.rs`) include this
//! file too.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};

use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `hello.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `hello.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The server of `hello.Greeter`, answering `SayHello` with `hello`.
#[derive(Clone, Debug)]
pub struct GreeterServer<F> {
    hello: F,
}

impl<F> GreeterServer<F> {
    pub fn new(hello: F) -> Self {
        GreeterServer { hello }
    }
}

impl<F> tonic::server::NamedService for GreeterServer<F> {
    const NAME: &'static str = "hello.Greeter";
}

impl<F, Fut, B> Service<http::Request<B>> for GreeterServer<F>
where
    F: Fn(Request<HelloRequest>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<HelloReply>, Status>> + Send + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != "/hello.Greeter/SayHello" {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let say_hello = SayHello(self.hello.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(say_hello, request).await)
        })
    }
}

struct SayHello<F>(F);

impl<F, Fut> tonic::server::UnaryService<HelloRequest> for SayHello<F>
where
    F: Fn(Request<HelloRequest>) -> Fut,
    Fut: Future<Output = Result<Response<HelloReply>, Status>> + Send + 'static,
{
    type Response = HelloReply;
    type Future = Fut;

    fn call(&mut self, request: Request<HelloRequest>) -> Fut {
        (self.0)(request)
    }
}

/// The client's side: one `SayHello` call on `channel`.
#[allow(dead_code)] // Called by the tests, not by the example.
pub async fn say_hello<T>(channel: T, name: &str) -> Result<HelloReply, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.into().to_string()))?;
    let request = Request::new(HelloRequest { name: name.into() });
    let path = PathAndQuery::from_static("/hello.Greeter/SayHello");
    let reply = grpc.unary(request, path, ProstCodec::default()).await?;
    Ok(reply.into_inner())
}
