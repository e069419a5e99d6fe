const mk = (n) => JSON.stringify(Object.fromEntries([['device', 'wide'], ...Array.from({ length: n }, (_, i) => [`k${i}`, i])]));
function med(fn){const t=[];for(let i=0;i<9;i++){gc();const a=process.hrtime.bigint();fn();t.push(Number(process.hrtime.bigint()-a)/1e6)}t.sort((a,b)=>a-b);return t[4].toFixed(2)}
for (const n of [1000, 2000, 4000,8000,16000,32000,64000]) {
  const s = mk(n);
  console.log(n, s.length, 'parse wide', med(()=>JSON.parse(s)), 'parse+assign', med(()=>{const o=JSON.parse(s); const v={}; for (const [k,x] of Object.entries(o)) v[k]=x;}));
}
