//! A minimal pipelined RESP2 client over a tokio `TcpStream`: binary-safe commands, zero-copy bulk reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Errors of the RESP client.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The socket failed.
    #[error("redis i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("redis closed the connection")]
    Closed,
    /// The server answered with an error reply.
    #[error("redis error reply: {0}")]
    Server(String),
    /// The server's bytes did not parse as the expected reply.
    #[error("redis protocol: {0}")]
    Protocol(String),
}

/// A reply that is not an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Simple(String),
    /// `:n`
    Int(i64),
    /// `$n ...` (bytes) or `$-1` (None).
    Bulk(Option<Vec<u8>>),
}

/// What [`RespConn::read_bulk_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkInto {
    /// A bulk string of exactly `out.len()` bytes, copied into `out`.
    Filled,
    /// A null bulk string (missing key).
    Null,
}

/// One connection: a write buffer of queued commands and a read buffer of replies.
#[derive(Debug)]
pub struct RespConn {
    stream: TcpStream,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    rpos: usize,
}

impl RespConn {
    /// Connect to `host:port` (TCP_NODELAY on).
    pub async fn connect(addr: &str) -> Result<Self, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            wbuf: Vec::with_capacity(1 << 20),
            rbuf: Vec::with_capacity(1 << 20),
            rpos: 0,
        })
    }

    /// Queue the header of a command of `nargs` arguments (the command name counts).
    pub fn cmd(&mut self, nargs: usize) {
        self.wbuf.push(b'*');
        self.push_decimal(nargs);
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// Queue one argument: the concatenation of `parts` as one bulk string.
    pub fn arg(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.wbuf.push(b'$');
        self.push_decimal(len);
        self.wbuf.extend_from_slice(b"\r\n");
        for p in parts {
            self.wbuf.extend_from_slice(p);
        }
        self.wbuf.extend_from_slice(b"\r\n");
    }

    fn push_decimal(&mut self, mut n: usize) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.wbuf.extend_from_slice(&tmp[i..]);
    }

    /// Send every queued command.
    pub async fn flush(&mut self) -> Result<(), RespError> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// Read more bytes from the socket into the read buffer.
    async fn fill(&mut self) -> Result<(), RespError> {
        if self.rpos > 0 && self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > (1 << 20) {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let old = self.rbuf.len();
        self.rbuf.resize(old + (256 << 10), 0);
        let n = self.stream.read(&mut self.rbuf[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.rbuf.truncate(old);
                return Err(e.into());
            }
        };
        self.rbuf.truncate(old + n);
        if n == 0 {
            return Err(RespError::Closed);
        }
        Ok(())
    }

    /// The next `\r\n`-terminated line, consumed: its type byte and the range of the rest in `rbuf`
    /// (valid until the next read).
    async fn line(&mut self) -> Result<(u8, std::ops::Range<usize>), RespError> {
        let mut from = self.rpos;
        loop {
            if let Some(p) = self.rbuf[from..].windows(2).position(|w| w == b"\r\n") {
                let end = from + p;
                if end == self.rpos {
                    return Err(RespError::Protocol("empty line".into()));
                }
                let kind = self.rbuf[self.rpos];
                let rest = self.rpos + 1..end;
                self.rpos = end + 2;
                return Ok((kind, rest));
            }
            from = self.rbuf.len().saturating_sub(1).max(self.rpos);
            let before = self.rpos;
            self.fill().await?;
            // `fill` may move unread bytes to the front of the buffer.
            from = from - before + self.rpos;
        }
    }

    /// Make at least `n` unread bytes available.
    async fn need(&mut self, n: usize) -> Result<(), RespError> {
        while self.rbuf.len() - self.rpos < n {
            self.fill().await?;
        }
        Ok(())
    }

    fn parse_int(bytes: &[u8]) -> Result<i64, RespError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                RespError::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(bytes)))
            })
    }

    fn server_error(rest: &[u8]) -> RespError {
        RespError::Server(String::from_utf8_lossy(rest).into_owned())
    }

    /// Read one non-array reply; an error reply becomes `Err(Server)`.
    pub async fn read_reply(&mut self) -> Result<Reply, RespError> {
        let (kind, rest) = self.line().await?;
        let rest = &self.rbuf[rest];
        match kind {
            b'+' => Ok(Reply::Simple(String::from_utf8_lossy(rest).into_owned())),
            b'-' => Err(Self::server_error(rest)),
            b':' => Ok(Reply::Int(Self::parse_int(rest)?)),
            b'$' => {
                let len = Self::parse_int(rest)?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = len as usize;
                self.need(len + 2).await?;
                let data = self.rbuf[self.rpos..self.rpos + len].to_vec();
                self.rpos += len + 2;
                Ok(Reply::Bulk(Some(data)))
            }
            other => Err(RespError::Protocol(format!(
                "unexpected reply type {:?}",
                other as char
            ))),
        }
    }

    /// Read an array header and return its length (a null array is an error).
    pub async fn read_array_len(&mut self) -> Result<usize, RespError> {
        let (kind, rest) = self.line().await?;
        let rest = &self.rbuf[rest];
        match kind {
            b'*' => {
                let n = Self::parse_int(rest)?;
                usize::try_from(n).map_err(|_| RespError::Protocol("null array".into()))
            }
            b'-' => Err(Self::server_error(rest)),
            other => Err(RespError::Protocol(format!(
                "expected an array, got {:?}",
                other as char
            ))),
        }
    }

    /// Read one bulk string of exactly `out.len()` bytes into `out`, or a null.
    pub async fn read_bulk_into(&mut self, out: &mut [u8]) -> Result<BulkInto, RespError> {
        let (kind, rest) = self.line().await?;
        let rest = &self.rbuf[rest];
        if kind == b'-' {
            return Err(Self::server_error(rest));
        }
        if kind != b'$' {
            return Err(RespError::Protocol(format!(
                "expected a bulk string, got {:?}",
                kind as char
            )));
        }
        let len = Self::parse_int(rest)?;
        if len < 0 {
            return Ok(BulkInto::Null);
        }
        let len = len as usize;
        if len != out.len() {
            return Err(RespError::Protocol(format!(
                "value of {len} bytes, expected {}",
                out.len()
            )));
        }
        self.need(len + 2).await?;
        out.copy_from_slice(&self.rbuf[self.rpos..self.rpos + len]);
        if &self.rbuf[self.rpos + len..self.rpos + len + 2] != b"\r\n" {
            return Err(RespError::Protocol("bulk string not terminated".into()));
        }
        self.rpos += len + 2;
        Ok(BulkInto::Filled)
    }

    /// Send one command of simple arguments and read its (non-array) reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        self.cmd(args.len());
        for a in args {
            self.arg(&[a]);
        }
        self.flush().await?;
        self.read_reply().await
    }
}
