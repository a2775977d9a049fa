//! The request-response codec of the federation protocol: one postcard value per stream, after a
//! 4-byte big-endian length. Lengths above [`MAX_FED_MESSAGE_BYTES`] and undecodable values are
//! IO errors (the stream is dropped), never panics.
//!
//! The length is read before anything is known of the peer (libp2p's request-response codec is
//! not told who is on the stream, and a peer that is not linked is refused only once its request
//! is read), so reading is bounded for everyone: the bytes of all messages being read at once
//! share one budget, [`READ_BUDGET`], taken before a body is read and given back when it is
//! decoded; a stream waiting for the budget reads nothing, so its transport's flow control stops
//! the sender; and a body takes memory only as its bytes arrive, never its announced length.

use std::io;
use std::sync::Arc;
use tokio::sync::Semaphore;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use veche_protocol::federation::{FedReply, FedRequest, MAX_FED_MESSAGE_BYTES};

/// Bytes of federation messages (requests and replies) this node reads at once, from all peers
/// together: eight of the largest messages. Linked nodes exchange pages of at most 4 MiB, a few at
/// a time, so they rarely wait; a stranger announcing 8 MiB messages on hundreds of streams holds
/// 64 MiB of the node's memory at most (plus the transports' stream windows), not 8 MiB per stream.
/// A stream waiting for the budget is bounded by the request timeout (`FED_TIMEOUT`).
pub const READ_BUDGET: usize = 8 * MAX_FED_MESSAGE_BYTES;

/// The codec; clones share the read budget.
#[derive(Debug, Clone)]
pub struct FedCodec {
    budget: Arc<Semaphore>,
}

impl Default for FedCodec {
    fn default() -> Self {
        FedCodec { budget: Arc::new(Semaphore::new(READ_BUDGET)) }
    }
}

impl FedCodec {
    async fn read_value<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(&self, io: &mut R) -> io::Result<T> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FED_MESSAGE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("federation message of {len} bytes is too large"),
            ));
        }
        // At most MAX_FED_MESSAGE_BYTES (8 MiB), so it fits a u32; the budget is never closed.
        let _permit = self
            .budget
            .acquire_many(len as u32)
            .await
            .map_err(|_| io::Error::other("federation read budget closed"))?;
        let mut buf = Vec::new();
        let read = io.take(len as u64).read_to_end(&mut buf).await?;
        if read < len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "federation message cut short"));
        }
        veche_protocol::federation::decode(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed federation message: {e}")))
    }

    /// Bytes of the read budget free now.
    #[cfg(test)]
    fn budget_left(&self) -> usize {
        self.budget.available_permits()
    }
}

async fn write_value<T: Serialize, W: AsyncWrite + Unpin + Send>(io: &mut W, value: &T) -> io::Result<()> {
    let bytes = veche_protocol::federation::encode(value);
    if bytes.len() > MAX_FED_MESSAGE_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "federation message too large to send"));
    }
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for FedCodec {
    type Protocol = StreamProtocol;
    type Request = FedRequest;
    type Response = FedReply;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<FedRequest> {
        self.read_value(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<FedReply> {
        self.read_value(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: FedRequest,
    ) -> io::Result<()> {
        write_value(io, &request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        reply: FedReply,
    ) -> io::Result<()> {
        write_value(io, &reply).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;
    use libp2p::request_response::Codec;
    use veche_protocol::ids::GroupId;

    #[test]
    fn round_trip_and_refusals() {
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let request = FedRequest::Notify { group: GroupId([3; 16]), head: 9 };
        let mut codec = FedCodec::default();
        let mut buf = Cursor::new(Vec::new());
        block_on(codec.write_request(&protocol, &mut buf, request.clone())).unwrap();
        let mut read = Cursor::new(buf.into_inner());
        assert_eq!(block_on(codec.read_request(&protocol, &mut read)).unwrap(), request);

        let mut huge = Cursor::new(((MAX_FED_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec());
        let e = block_on(codec.read_request(&protocol, &mut huge)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");

        let mut garbage = Cursor::new([0, 0, 0, 3, 0xff, 0xff, 0xff].to_vec());
        assert!(block_on(codec.read_request(&protocol, &mut garbage)).is_err());
        let mut short = Cursor::new([0, 0, 0, 9, 1].to_vec());
        assert!(block_on(codec.read_request(&protocol, &mut short)).is_err());
        // Whatever happened, the budget is whole again.
        assert_eq!(codec.budget_left(), READ_BUDGET);
    }

    /// A stream announcing the largest message and sending nothing more takes its length from the
    /// shared budget while it waits (and no memory); streams beyond the budget wait before reading.
    #[tokio::test]
    async fn the_read_budget_is_shared_and_given_back() {
        let protocol = StreamProtocol::new(veche_protocol::federation::FED_PROTOCOL);
        let codec = FedCodec::default();
        let announced = (MAX_FED_MESSAGE_BYTES as u32).to_be_bytes();
        let mut waiting = Vec::new();
        for _ in 0..READ_BUDGET / MAX_FED_MESSAGE_BYTES {
            // A stream that has sent only the length so far; dropping `writer` ends it.
            let (writer, chunks) = libp2p::futures::channel::mpsc::unbounded::<Vec<u8>>();
            writer.unbounded_send(announced.to_vec()).unwrap();
            let mut c = codec.clone();
            let protocol = protocol.clone();
            waiting.push((
                writer,
                tokio::spawn(async move {
                    use libp2p::futures::{StreamExt as _, TryStreamExt as _};
                    let mut io = chunks.map(Ok::<_, io::Error>).into_async_read();
                    c.read_request(&protocol, &mut io).await
                }),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(codec.budget_left(), 0, "eight streams announcing 8 MiB hold the whole budget");
        // One more waits: it cannot read even a small message until the budget frees.
        let mut small = Cursor::new(Vec::new());
        codec
            .clone()
            .write_request(&protocol, &mut small, FedRequest::Notify { group: GroupId([1; 16]), head: 2 })
            .await
            .unwrap();
        let mut late = codec.clone();
        let mut late_io = Cursor::new(small.into_inner());
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(200), late.read_request(&protocol, &mut late_io))
                .await;
        assert!(waited.is_err(), "a read beyond the budget waits");
        // The waiting streams are cut off: their budget comes back, and the small one reads.
        for (writer, task) in waiting {
            drop(writer);
            assert!(task.await.unwrap().is_err(), "a message cut short is an error");
        }
        assert_eq!(codec.budget_left(), READ_BUDGET);
        let mut late_io = Cursor::new(late_io.into_inner());
        assert!(late.read_request(&protocol, &mut late_io).await.is_ok());
    }
}
