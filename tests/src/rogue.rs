//! A rogue libp2p peer that speaks the federation protocol (`/veche/fed/1`) to a real node: it
//! sends whatever a test asks (well-formed requests, raw bytes, stalled or trickled streams),
//! accepts every link request, and answers the node's requests as the test decides (a
//! [`Respond`] function first, then a script of replies in order).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};
use veche_protocol::federation::{FED_PROTOCOL, FedReply, FedRequest, LINK_PROTOCOL, LinkMessage, LinkReply};
use veche_protocol::wire::{ApiError, ErrorCode};

/// What the rogue sends: raw bytes (anything), or a well-formed request.
#[derive(Debug, Clone)]
pub enum Out {
    Raw(Vec<u8>),
    Req(FedRequest),
    /// These bytes, then nothing: the stream stays open until the request times out.
    Stall(Vec<u8>),
    /// The length `announce`, then a 16 KiB chunk of the body every 100 ms for as long as the
    /// node reads it: a slow sender that holds whatever the node set aside for its message. Ends
    /// with an error as soon as the node refuses the stream.
    Trickle {
        announce: u32,
    },
}

/// The node's answer to what the rogue sent, or why there is none.
pub type Answer = Result<FedReply, String>;

/// How the rogue answers a request of the node (given its own peer id): `None` leaves it to the
/// script ([`Rogue::script`]).
pub type Respond = Box<dyn FnMut(PeerId, &FedRequest) -> Option<FedReply> + Send>;

#[derive(Debug, Clone, Copy, Default)]
struct RogueCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl request_response::Codec for RogueCodec {
    type Protocol = StreamProtocol;
    type Request = Out;
    type Response = FedReply;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Out> {
        let bytes = read_frame(io).await?;
        veche_protocol::federation::decode(&bytes).map(Out::Req).map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<FedReply> {
        let bytes = read_frame(io).await?;
        veche_protocol::federation::decode(&bytes).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        out: Out,
    ) -> std::io::Result<()> {
        match out {
            Out::Raw(bytes) => {
                io.write_all(&bytes).await?;
                io.close().await
            }
            Out::Req(request) => write_frame(io, &veche_protocol::federation::encode(&request)).await,
            Out::Stall(bytes) => {
                io.write_all(&bytes).await?;
                io.flush().await?;
                std::future::pending().await
            }
            Out::Trickle { announce } => {
                io.write_all(&announce.to_be_bytes()).await?;
                io.flush().await?;
                let chunk = vec![0u8; 16 * 1024];
                for _ in 0..(announce as usize).div_ceil(chunk.len()) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    io.write_all(&chunk).await?;
                    io.flush().await?;
                }
                std::future::pending().await
            }
        }
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        reply: FedReply,
    ) -> std::io::Result<()> {
        write_frame(io, &veche_protocol::federation::encode(&reply)).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    link: request_response::cbor::Behaviour<LinkMessage, LinkReply>,
    fed: request_response::Behaviour<RogueCodec>,
}

/// A peer that says whatever the test scripts.
pub struct Rogue {
    pub peer_id: PeerId,
    /// Its loopback QUIC address (without `/p2p/`).
    pub addr: Multiaddr,
    tx: mpsc::Sender<(Out, oneshot::Sender<Answer>)>,
    /// Replies to the node's requests that [`Respond`] leaves alone, in order; `Refused` once
    /// empty.
    pub script: Arc<Mutex<VecDeque<FedReply>>>,
    /// Requests the node sent it.
    pub heard: Arc<Mutex<Vec<FedRequest>>>,
}

impl Rogue {
    /// A rogue that dials `target` (`target_id`) when it first sends, waits `timeout` for each
    /// answer, and answers the node with `respond`, then the script.
    pub async fn start(
        target: Multiaddr,
        target_id: PeerId,
        timeout: Duration,
        mut respond: Respond,
    ) -> anyhow::Result<Rogue> {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_quic()
            .with_behaviour(|_| Behaviour {
                link: request_response::cbor::Behaviour::new(
                    [(StreamProtocol::new(LINK_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default(),
                ),
                fed: request_response::Behaviour::with_codec(
                    RogueCodec,
                    [(StreamProtocol::new(FED_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(timeout)
                        .with_max_concurrent_streams(10_000),
                ),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        swarm.add_peer_address(target_id, target);
        let peer_id = *swarm.local_peer_id();
        let (tx, mut rx) = mpsc::channel::<(Out, oneshot::Sender<Answer>)>(16_384);
        let script: Arc<Mutex<VecDeque<FedReply>>> = Arc::default();
        let heard: Arc<Mutex<Vec<FedRequest>>> = Arc::default();
        let (script2, heard2) = (script.clone(), heard.clone());
        tokio::spawn(async move {
            let mut pending = HashMap::new();
            loop {
                tokio::select! {
                    Some((out, reply)) = rx.recv() => {
                        let id = swarm.behaviour_mut().fed.send_request(&target_id, out);
                        pending.insert(id, reply);
                    }
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(BehaviourEvent::Link(request_response::Event::Message {
                            message: request_response::Message::Request { channel, .. }, ..
                        })) => {
                            let _ = swarm.behaviour_mut().link.send_response(channel, LinkReply::Linked);
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Fed(event)) => match event {
                            request_response::Event::Message { message: request_response::Message::Request { request, channel, .. }, .. } => {
                                let mut reply = None;
                                if let Out::Req(request) = request {
                                    reply = respond(peer_id, &request);
                                    heard2.lock().unwrap().push(request);
                                }
                                let reply = reply.or_else(|| script2.lock().unwrap().pop_front()).unwrap_or_else(|| {
                                    FedReply::Refused(ApiError::new(ErrorCode::NotFound, "nothing scripted"))
                                });
                                let _ = swarm.behaviour_mut().fed.send_response(channel, reply);
                            }
                            request_response::Event::Message { message: request_response::Message::Response { request_id, response }, .. } => {
                                if let Some(reply) = pending.remove(&request_id) {
                                    let _ = reply.send(Ok(response));
                                }
                            }
                            request_response::Event::OutboundFailure { request_id, error, .. } => {
                                if let Some(reply) = pending.remove(&request_id) {
                                    let _ = reply.send(Err(error.to_string()));
                                }
                            }
                            _ => {}
                        },
                        _ => {}
                    },
                }
            }
        });
        Ok(Rogue { peer_id, addr, tx, script, heard })
    }

    /// Sends `out` to the node and waits for its answer.
    pub async fn send(&self, out: Out) -> Answer {
        let (reply, rx) = oneshot::channel();
        self.tx.send((out, reply)).await.map_err(|e| e.to_string())?;
        rx.await.map_err(|e| e.to_string())?
    }

    /// Sends a well-formed request to the node and waits for its answer.
    pub async fn ask(&self, request: FedRequest) -> Answer {
        self.send(Out::Req(request)).await
    }
}
