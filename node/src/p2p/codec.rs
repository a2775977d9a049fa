//! The request-response codec of the federation protocol: one postcard value per stream, after a
//! 4-byte big-endian length. Lengths above [`MAX_FED_MESSAGE_BYTES`] and undecodable values are
//! IO errors (the stream is dropped), never panics.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use veche_protocol::federation::{FedReply, FedRequest, MAX_FED_MESSAGE_BYTES};

#[derive(Debug, Clone, Copy, Default)]
pub struct FedCodec;

async fn read_value<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(io: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FED_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("federation message of {len} bytes is too large"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    veche_protocol::federation::decode(&buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed federation message: {e}")))
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
        read_value(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<FedReply> {
        read_value(io).await
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
        let mut buf = Cursor::new(Vec::new());
        block_on(FedCodec.write_request(&protocol, &mut buf, request.clone())).unwrap();
        let mut read = Cursor::new(buf.into_inner());
        assert_eq!(block_on(FedCodec.read_request(&protocol, &mut read)).unwrap(), request);

        let mut huge = Cursor::new(((MAX_FED_MESSAGE_BYTES + 1) as u32).to_be_bytes().to_vec());
        let e = block_on(FedCodec.read_request(&protocol, &mut huge)).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");

        let mut garbage = Cursor::new([0, 0, 0, 3, 0xff, 0xff, 0xff].to_vec());
        assert!(block_on(FedCodec.read_request(&protocol, &mut garbage)).is_err());
        let mut short = Cursor::new([0, 0, 0, 9, 1].to_vec());
        assert!(block_on(FedCodec.read_request(&protocol, &mut short)).is_err());
    }
}
