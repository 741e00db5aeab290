//! The protobuf codec of every Loupe gRPC service and client: prost's, except that a message that does not
//! decode is the sender's mistake (`INVALID_ARGUMENT`), where prost's codec calls it an internal error. Bad
//! input must never look like a server fault, over gRPC as over REST.

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// `tonic_prost::ProstCodec` with undecodable messages answered as `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Default)]
pub struct StrictProstCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(self.0.decoder())
    }
}

/// The decoder of `StrictProstCodec`.
#[derive(Debug)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| match status.code() {
            Code::Internal => Status::invalid_argument(format!(
                "the message is not a valid {}: {}",
                std::any::type_name::<U>().rsplit("::").next().unwrap_or("message"),
                status.message()
            )),
            _ => status,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// A codec that moves messages as their encoded bytes, for forwarding a call to a method chosen at run time
/// without decoding it (the vizier's connector, the cloud's passthrough). A frame that arrives is handed on as is.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

/// The encoder and decoder of [`BytesCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCoder;

impl Codec for BytesCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = BytesCoder;
    type Decoder = BytesCoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCoder
    }
}

impl tonic::codec::Encoder for BytesCoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn encode(&mut self, item: bytes::Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        use bytes::BufMut as _;
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<bytes::Bytes>, Status> {
        use bytes::Buf as _;
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
