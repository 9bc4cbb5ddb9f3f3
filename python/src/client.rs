//! `NativeClient`: one [`strata_client::Client`] and the shared runtime it runs on. Every
//! call that waits on the network releases the GIL; pulls and pushes run as tasks of the
//! runtime's workers, next to the connections' I/O; arrays cross as slices of the caller's
//! numpy buffers (rows land in a caller's buffer directly; gradients are sent from the
//! caller's array, which the request keeps alive, without a copy when one node serves them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use strata_client::{v1 as pb, Client, ClientError, ClientOptions};
use tokio::runtime::Runtime;

use crate::{errors, runtime, spec};

/// A connection to a strata cluster (the `strata.Client` of the Python package wraps it).
#[pyclass(frozen, module = "strata._native")]
pub struct NativeClient {
    client: Client,
    runtime: Arc<Runtime>,
}

impl NativeClient {
    /// Runs `call` on the runtime with the GIL released; its error becomes an exception.
    fn wait<T, F>(&self, py: Python<'_>, call: F) -> PyResult<T>
    where
        T: Send,
        F: Future<Output = Result<T, ClientError>> + Send,
    {
        let runtime = &self.runtime;
        py.detach(|| runtime.block_on(call))
            .map_err(|e| errors::to_py(py, e))
    }

    /// Runs `call` as a task of the runtime, whose workers also drive the connections, so
    /// the frames of a response wake no other thread; the caller waits, with the GIL
    /// released, until the task has finished (whatever its outcome). For the data path.
    fn run<T, F>(&self, py: Python<'_>, call: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        let runtime = &self.runtime;
        match py.detach(|| runtime.block_on(runtime.spawn(call))) {
            Ok(result) => result.map_err(|e| errors::to_py(py, e)),
            Err(failed) => Err(errors::raise(
                py,
                "StrataError",
                format!("the client's task failed: {failed}"),
                "INTERNAL",
            )),
        }
    }
}

/// A caller's float32 buffer that a task of the runtime writes rows into.
struct OutBuffer {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: an `OutBuffer` is made from a numpy array the caller holds a write borrow of, and
// the caller waits until the task that writes through it has finished (`NativeClient::run`),
// so the buffer outlives every use and nothing else touches it meanwhile.
unsafe impl Send for OutBuffer {}

impl OutBuffer {
    /// The buffer as a slice (valid while the caller waits; see `Send` above).
    fn slice(self) -> &'static mut [f32] {
        // SAFETY: see `Send` above; `ptr..ptr + len` is the array's contiguous buffer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A contiguous slice of `array`, or `InvalidArgument` naming `what`.
fn contiguous<'a, T: numpy::Element>(
    py: Python<'_>,
    what: &str,
    slice: Result<&'a [T], numpy::AsSliceError>,
) -> PyResult<&'a [T]> {
    slice.map_err(|_| errors::invalid(py, format!("{what} must be C-contiguous")))
}

/// A float32 array's values as bytes, for [`Bytes::from_owner`]: the reference to the array
/// keeps its buffer alive for as long as any part of the request holds the bytes.
struct ArrayBytes {
    _array: Py<PyAny>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is into the buffer of the array `_array` references, which is not freed
// while that reference lives; the bytes are only read.
unsafe impl Send for ArrayBytes {}

impl AsRef<[u8]> for ArrayBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see `Send` above; `ptr..ptr + len` is the array's contiguous buffer.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The values of a C-contiguous float32 array as packed bytes that share its buffer.
fn packed(py: Python<'_>, grads: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<Bytes> {
    let values = contiguous(py, "grads", grads.as_slice())?;
    Ok(Bytes::from_owner(ArrayBytes {
        _array: grads.as_any().clone().unbind(),
        ptr: values.as_ptr().cast(),
        len: std::mem::size_of_val(values),
    }))
}

#[pymethods]
impl NativeClient {
    /// Connects to the comma-separated coordinator addresses and fetches the cluster map;
    /// `labels` (`key=value,...`) says where the client runs (`None`: `STRATA_LABELS`);
    /// `connect_timeout` (seconds, `None`: 3) bounds the wait for a coordinator to answer;
    /// `tls_ca`, `tls_cert`, `tls_key` name TLS files (`None`: `STRATA_TLS_*`).
    #[new]
    #[pyo3(signature = (addresses, labels=None, connect_timeout=None, tls_ca=None, tls_cert=None, tls_key=None))]
    fn new(
        py: Python<'_>,
        addresses: &str,
        labels: Option<String>,
        connect_timeout: Option<f64>,
        tls_ca: Option<std::path::PathBuf>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let runtime = runtime::shared().map_err(|e| {
            errors::raise(
                py,
                "StrataError",
                format!("cannot start the client runtime: {e}"),
                "INTERNAL",
            )
        })?;
        let addresses = addresses.to_string();
        let mut options = ClientOptions::from_env();
        if labels.is_some() {
            options.labels = labels;
        }
        // Each TLS file given here over its STRATA_TLS_* variable.
        options.tls = strata_client::TlsFiles {
            ca: tls_ca,
            cert: tls_cert,
            key: tls_key,
        }
        .or(options.tls);
        if let Some(seconds) = connect_timeout {
            options.connect_timeout = std::time::Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    errors::invalid(
                        py,
                        format!(
                            "connect_timeout must be a positive number of seconds, not {seconds}"
                        ),
                    )
                })?;
        }
        let client = py
            .detach(|| runtime.block_on(Client::connect_with(&addresses, options)))
            .map_err(|e| errors::to_py(py, e))?;
        Ok(Self { client, runtime })
    }

    /// The address of the coordinator control-plane calls go to (the leader, once found).
    fn coordinator_address(&self) -> String {
        self.client.coordinator_address()
    }

    /// Epoch of the cluster map the client routes with.
    fn epoch(&self) -> u64 {
        self.client.epoch()
    }

    /// Rows of `ids` of `table`, flat (`len(ids) * dim` float32 values, row-major).
    fn pull<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        ids: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let ids = contiguous(py, "ids", ids.as_slice())?.to_vec();
        let (client, table) = (self.client.clone(), table.to_owned());
        let rows = self.run(py, async move { client.pull(&table, &ids).await })?;
        Ok(PyArray1::from_vec(py, rows))
    }

    /// Rows of `ids` of `table` written into `out` (C-contiguous float32 holding
    /// `len(ids) * dim` values); distinct ids' rows go from the responses straight into it.
    fn pull_into<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        ids: PyReadonlyArray1<'py, u64>,
        mut out: PyReadwriteArrayDyn<'py, f32>,
    ) -> PyResult<()> {
        let ids = contiguous(py, "ids", ids.as_slice())?.to_vec();
        let out = out
            .as_slice_mut()
            .map_err(|_| errors::invalid(py, "out must be C-contiguous".into()))?;
        let out = OutBuffer {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        };
        let (client, table) = (self.client.clone(), table.to_owned());
        self.run(py, async move {
            client.pull_into(&table, &ids, out.slice()).await
        })
    }

    /// Applies `grads` (`len(ids) * dim` float32 values) to `ids` of `table`; duplicate ids
    /// are summed. Returns the number of distinct rows applied.
    fn push<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        ids: PyReadonlyArray1<'py, u64>,
        grads: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<u64> {
        let ids = contiguous(py, "ids", ids.as_slice())?.to_vec();
        let grads = packed(py, &grads)?;
        let (client, table) = (self.client.clone(), table.to_owned());
        self.run(
            py,
            async move { client.push_packed(&table, &ids, grads).await },
        )
    }

    /// Creates a table; `hyperparameters` are optimizer settings by flag name.
    #[allow(clippy::too_many_arguments)]
    fn create_table(
        &self,
        py: Python<'_>,
        name: &str,
        dim: u32,
        optimizer: &str,
        hyperparameters: HashMap<String, f32>,
        init: &str,
        seed: u64,
        tier: &str,
    ) -> PyResult<()> {
        let spec = pb::TableSpec {
            name: name.into(),
            dim,
            optimizer: Some(
                spec::optimizer(optimizer, &hyperparameters).map_err(|e| errors::invalid(py, e))?,
            ),
            initializer: Some(spec::initializer(init).map_err(|e| errors::invalid(py, e))?),
            seed,
            tier: tier.into(),
        };
        self.wait(py, self.client.create_table(spec))?;
        Ok(())
    }

    /// Drops a table and its rows.
    fn drop_table(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.wait(py, self.client.drop_table(name))
    }

    /// Tables as dicts: name, dim, optimizer, rows, bytes, tier.
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = self.wait(py, self.client.list_tables())?;
        let out = PyList::empty(py);
        for info in list.tables {
            let spec = info.spec.unwrap_or_default();
            let entry = PyDict::new(py);
            entry.set_item("name", spec.name)?;
            entry.set_item("dim", spec.dim)?;
            entry.set_item(
                "optimizer",
                spec.optimizer.map(|o| o.kind).unwrap_or_default(),
            )?;
            entry.set_item("rows", info.rows)?;
            entry.set_item("bytes", info.bytes)?;
            entry.set_item("tier", spec.tier)?;
            out.append(entry)?;
        }
        Ok(out)
    }

    /// Dense tensors as dicts: name, shape, optimizer.
    fn dense_tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = self.wait(py, self.client.list_tables())?;
        let out = PyList::empty(py);
        for info in list.dense {
            let spec = info.spec.unwrap_or_default();
            let entry = PyDict::new(py);
            entry.set_item("name", spec.name)?;
            entry.set_item("shape", spec.shape)?;
            entry.set_item(
                "optimizer",
                spec.optimizer.map(|o| o.kind).unwrap_or_default(),
            )?;
            out.append(entry)?;
        }
        Ok(out)
    }

    /// Creates a dense tensor of `shape`.
    #[allow(clippy::too_many_arguments)]
    fn create_dense(
        &self,
        py: Python<'_>,
        name: &str,
        shape: Vec<u32>,
        optimizer: &str,
        hyperparameters: HashMap<String, f32>,
        init: &str,
        seed: u64,
    ) -> PyResult<()> {
        let spec = pb::DenseSpec {
            name: name.into(),
            shape,
            optimizer: Some(
                spec::optimizer(optimizer, &hyperparameters).map_err(|e| errors::invalid(py, e))?,
            ),
            initializer: Some(spec::initializer(init).map_err(|e| errors::invalid(py, e))?),
            seed,
        };
        self.wait(py, self.client.create_dense(spec))
    }

    /// A dense tensor's values (flat float32) and shape.
    fn pull_dense<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(Bound<'py, PyArray1<f32>>, Vec<u32>)> {
        let (values, shape) = self.wait(py, self.client.pull_dense(name))?;
        Ok((PyArray1::from_vec(py, values), shape))
    }

    /// Applies a gradient (all of the tensor's values, float32) to a dense tensor.
    fn push_dense<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        grads: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<u64> {
        let grads = contiguous(py, "grads", grads.as_slice())?;
        self.wait(py, self.client.push_dense(name, grads))
    }

    /// Drops a dense tensor.
    fn drop_dense(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.wait(py, self.client.drop_dense(name))
    }

    /// Takes a checkpoint of every table and dense tensor; returns its id.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.wait(py, self.client.checkpoint())?.id)
    }

    /// Checkpoints, newest first, as dicts: id, created_unix_ms, bytes, tables, rows, state.
    fn checkpoints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = self.wait(py, self.client.list_checkpoints())?;
        let out = PyList::empty(py);
        for info in list {
            let entry = PyDict::new(py);
            entry.set_item("id", info.id)?;
            entry.set_item("created_unix_ms", info.created_unix_ms)?;
            entry.set_item("bytes", info.bytes)?;
            entry.set_item("tables", info.tables)?;
            entry.set_item("rows", info.rows)?;
            entry.set_item("state", info.state)?;
            out.append(entry)?;
        }
        Ok(out)
    }

    /// Restores checkpoint `id`.
    fn restore(&self, py: Python<'_>, id: &str) -> PyResult<()> {
        self.wait(py, self.client.restore(id))?;
        Ok(())
    }
}
