import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Drops connections that hold the server without finishing a request (slowloris): the request
/// headers must be complete within `header` of the connection opening (or within `idle` of the
/// previous response, on a kept-alive connection), and the body within `body` of the headers.
/// Sits after the HTTP decoder, so it sees whole request heads, and before request handling.
final class SlowClientGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    struct Limits: Sendable {
        var header: TimeAmount
        var body: TimeAmount
        var idle: TimeAmount
    }

    let limits: Limits
    private var deadline: Scheduled<Void>?
    private var requestsInFlight = 0
    /// A request whose head arrived but not yet its end (its body is still being read).
    private var bodyPending = false

    init(limits: Limits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, limits.header) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, limits.header)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsInFlight += 1
            bodyPending = true
            arm(context, limits.body)
        case .end:
            bodyPending = false
            // The request is in. If its response already went out, the connection is idle now;
            // otherwise the response may take what it takes.
            if requestsInFlight == 0 { arm(context, limits.idle) } else { disarm() }
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            requestsInFlight = max(0, requestsInFlight - 1)
            // A body still arriving keeps its own deadline; else the connection is idle from here.
            if requestsInFlight == 0 && !bodyPending { arm(context, limits.idle) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext, _ after: TimeAmount) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: after) {
            channel.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
